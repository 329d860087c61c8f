"""isol8 doctor without an engine: parsing `info`, the checks' shape, and what it says when nothing works."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from isol8.backends.engine.dialect import DOCKER, PODMAN, parse_info
from isol8.config import Config
from isol8.core.doctor import Check, ca_check, disk_check
from isol8.models import EngineInfo
from tests.conftest import CliResult

RunCli = Callable[..., CliResult]

DATA = Path(__file__).parents[1] / "data"


def test_parse_docker_info() -> None:
    data = json.loads((DATA / "docker" / "info.json").read_text())
    assert parse_info(DOCKER, data) == EngineInfo(
        server_version="20.10.24+dfsg1",
        rootless=False,
        cgroup_version="v1",
        controllers=("memory", "pids", "cpu"),
        root_dir="/var/lib/docker",
        seccomp=True,
    )


def test_parse_podman_info() -> None:
    data = json.loads((DATA / "podman" / "info.json").read_text())
    assert parse_info(PODMAN, data) == EngineInfo(
        server_version="4.3.1",
        rootless=False,
        cgroup_version="v1",
        controllers=("cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "pids"),
        root_dir="/var/lib/containers/storage",
        seccomp=True,
    )


def test_parse_a_rootless_docker_on_cgroup_v2_without_pids() -> None:
    data = {
        "CgroupVersion": "2",
        "MemoryLimit": True,
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless"],
    }
    info = parse_info(DOCKER, data)
    assert (info.rootless, info.cgroup_version, info.controllers, info.seccomp) == (True, "v2", ("memory",), True)


def test_the_ca_check_says_which_bundle_and_fails_only_for_a_missing_one(tmp_path: Path) -> None:
    assert ca_check(Config({**Config().data, "packages": {"caBundle": "none"}})) == Check(
        "CA bundle", True, "none: none: installers trust their own roots only", required=False
    )
    missing = ca_check(Config({**Config().data, "packages": {"caBundle": str(tmp_path / "nope.pem")}}))
    assert (missing.ok, missing.required) == (False, False)
    assert "no such file" in missing.detail


def test_the_disk_check_of_a_remote_engine_does_not_look_at_this_host() -> None:
    info = EngineInfo("1", False, "v2", (), "/var/lib/docker", True)
    assert disk_check(info, remote=True).ok
    assert "engine's host" in disk_check(info, remote=True).detail


def test_doctor_with_an_invalid_config_and_no_engine_says_both_and_exits_1(
    run_cli: RunCli, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / "isol8.config.json").write_text('{"maxConcurrent": 0}')
    monkeypatch.setenv("PATH", str(isolated))  # no docker, no podman
    status, out, err = run_cli("doctor")
    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == f"✗ config: {isolated / 'isol8.config.json'}: maxConcurrent: expected a positive integer"
    assert lines[1].startswith("    hint: fix it")
    assert any(line.startswith("✗ engine: ") for line in lines)
    assert lines[-1] == "isol8 run will not work: 2 problem(s) above"


def test_doctor_json(run_cli: RunCli, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(isolated))
    status, out, _ = run_cli("doctor", "--json", "--engine", "podman")
    shown = json.loads(out)
    assert status == 1
    assert shown["ok"] is False
    assert shown["checks"][0] == {
        "name": "config",
        "ok": True,
        "detail": "no config file: the built-in defaults",
        "hint": "",
        "required": True,
    }
    assert [c["name"] for c in shown["checks"]] == ["config", "CA bundle", "engine"]
