"""`isol8 run` limit flags and config limits in process: exit 2 before any engine command (`fp`, strict)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from isol8.backends.engine.backend import EngineBackend
from isol8.backends.engine.dialect import DOCKER
from isol8.backends.engine.retry import RetryPolicy
from isol8.core.sandbox import OWN_PIDS
from isol8.frontends.cli.app import App
from tests.conftest import CliResult

RunCli = Callable[..., CliResult]
MIB = 1024 * 1024

UNLIMITED = ["0", "-1", "0.5", "nan", "inf", "-inf", "1e400", "", "  ", "0x10", "1\n"]
BAD_FLAGS = {
    "--memory": [*UNLIMITED, "5m", "2t", "99999999999999t", "1.3k"],
    "--sandbox-size": [*UNLIMITED, "1023k", "2t"],
    "--tmp-size": [*UNLIMITED, "1023k", "2t"],
    "--cpu": [v for v in UNLIMITED if v != "0.5"] + ["0.001", "2000", "true", "many"],
    "--pids-limit": [*UNLIMITED, "1.5", "99999999999", "true"],
    "--timeout": [*UNLIMITED, "25h", "0s"],
    "--max-output": [*UNLIMITED, "2g", "1.5"],
}
BAD_CONFIG = {
    "memoryLimit": [0, -1, "0", "-1", "0.5", "nan", "inf", 1e400, True, "", "  ", 2**50, "5m"],
    "sandboxSize": [0, -1, "0.5", "inf", True, "", "1023k"],
    "tmpSize": [0, -1, "0.5", "nan", False, "  "],
    "cpuLimit": [0, -1, "0", "nan", "inf", "-inf", 1e400, True, "", 0.001, 5000],
    "pidsLimit": [0, -1, "0", "-1", 1.5, "1.5", "nan", True, "", 2**40],
    "timeoutMs": [0, -1, "0.5", 0.5, "inf", True, "", 10**12],
    "maxOutputSize": [0, -1, "0.5", 1.5, True, "", 2**40],
}


@pytest.fixture(autouse=True)
def _isolated(isolated: Path) -> Path:
    return isolated


@pytest.fixture
def docker(fp: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """App.backend is a docker EngineBackend over `fp`: every engine command it runs is answered by one catch-all
    registration, and recorded, so `fp.calls` is every engine command the CLI ran."""

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s")

    engine = EngineBackend(DOCKER, retry=RetryPolicy(attempts=1), sleep=no_sleep)
    monkeypatch.setattr(App, "backend", property(lambda app: engine))
    fp.register([fp.any()], returncode=125, stderr="docker: refused by the test\n", occurrences=20)
    return fp


def assert_refused(result: CliResult, docker: Any, *fragments: str) -> None:
    status, out, err = result
    assert status == 2, err
    assert out == ""
    assert err.startswith("isol8: error: ") and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert list(docker.calls) == []


@pytest.mark.parametrize(("flag", "value"), [(f, v) for f, vs in BAD_FLAGS.items() for v in vs], ids=repr)
def test_a_bad_limit_flag_exits_2_naming_it_before_any_engine_command(
    run_cli: RunCli, docker: Any, flag: str, value: str
) -> None:
    assert_refused(run_cli("run", f"{flag}={value}", "-e", "print(1)"), docker, f"{flag}: ")


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in BAD_CONFIG.items() for v in vs], ids=repr)
def test_a_bad_config_limit_exits_2_naming_the_file_and_key(
    run_cli: RunCli, docker: Any, isolated: Path, key: str, value: object
) -> None:
    path = isolated / "isol8.config.json"
    path.write_text(json.dumps({"defaults": {key: value}}))
    assert_refused(run_cli("run", "-e", "print(1)"), docker, str(path), f"defaults.{key}: ")


def test_the_tightest_valid_values_reach_the_engine_exactly(run_cli: RunCli, docker: Any) -> None:
    """The control for the tests above: valid values do reach `docker run`, parsed. (How the faked run
    ends does not matter here: isol8's streaming reads pipes fp does not provide.)"""
    flags = ["--memory=6m", "--cpu=0.01", "--pids-limit=1", "--sandbox-size=1m", "--tmp-size=1024k"]
    status, _, err = run_cli("run", *flags, "--timeout=1ms", "--max-output=1", "-e", "print(1)")
    assert status != 2, err
    (run,) = [list(c) for c in docker.calls if list(c)[:2] == ["docker", "run"]]
    pairs = list(zip(run, run[1:], strict=False))
    for pair in [
        ("--memory", "6291456"),
        ("--memory-swap", "6291456"),
        ("--cpus", "0.01"),
        ("--pids-limit", str(1 + OWN_PIDS)),
    ]:
        assert pair in pairs, pair
    tmpfs = [b for a, b in pairs if a == "--tmpfs"]
    assert tmpfs[0].startswith("/sandbox:") and ",size=1048576," in tmpfs[0]
    assert tmpfs[1].startswith("/tmp:") and ",size=1048576," in tmpfs[1]


def test_a_config_size_is_compared_in_bytes_and_shown_for_people(run_cli: RunCli, docker: Any, isolated: Path) -> None:
    (isolated / "isol8.config.json").write_text(json.dumps({"defaults": {"memoryLimit": 268435456}}))
    run_cli("run", "-e", "print(1)")
    (run,) = [list(c) for c in docker.calls if list(c)[:2] == ["docker", "run"]]
    assert run[run.index("--memory") + 1] == str(256 * MIB)


@pytest.mark.parametrize(
    "tag", ["x//y", "a" * 300, "x\n", "x:t\n", "-x", "Upper", "my/Repo", "x:" + "t" * 129, "x:", "x..y"], ids=repr
)
def test_build_refuses_a_bad_tag_before_any_engine_command(run_cli: RunCli, docker: Any, tag: str) -> None:
    assert_refused(run_cli("build", "--base", "bash", f"--tag={tag}", "--install", "jq"), docker, "--tag: ")


def test_setup_refuses_a_bad_prebuilt_tag_before_any_engine_command(
    run_cli: RunCli, docker: Any, isolated: Path
) -> None:
    path = isolated / "isol8.config.json"
    path.write_text(json.dumps({"prebuiltImages": [{"tag": "x//y", "runtime": "bash", "setupScript": "true"}]}))
    assert_refused(run_cli("setup"), docker, str(path), "prebuiltImages[0].tag: ", "not a valid image name")


@pytest.mark.parametrize("config", ['{"debug": true}', '{"debug": false}', "{}"])
def test_debug_in_the_config_file_shows_the_engine_command(
    run_cli: RunCli, isolated: Path, fp: Any, monkeypatch: pytest.MonkeyPatch, config: str
) -> None:
    (isolated / "isol8.config.json").write_text(config)
    monkeypatch.delenv("ISOL8_DEBUG", raising=False)
    denied = "permission denied while trying to connect to the docker daemon socket at unix:///var/run/docker.sock"
    fp.register(["docker", "version", "--format", "{{.Server.Version}}"], returncode=1, stderr=denied)
    status, _, err = run_cli("--engine", "docker", "setup")
    assert status == 3
    assert ("[debug] + docker version" in err and "command: docker version" in err) == ('"debug": true' in config)


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--net", "none", "--allow", "a.test"], "need a filtered network"),
        (["--net", "host", "--deny", "a.test"], "need a filtered network"),
        (["--allow", "a.test http_access allow all"], "host 'a.test http_access allow all'"),
        (["--allow", r"^a\.test"], "must start with ^ and end with $"),
        (["--net", "filtered", "--persist"], "cannot be kept"),
    ],
)
def test_a_bad_filtered_network_exits_2_before_any_engine_command(
    run_cli: RunCli, docker: Any, flags: list[str], fragment: str
) -> None:
    assert_refused(run_cli("run", *flags, "-e", "print(1)"), docker, fragment)


def test_allow_implies_a_filtered_network_whose_proxy_starts_before_the_sandbox(run_cli: RunCli, docker: Any) -> None:
    run_cli("run", "--allow", "a.test", "-e", "print(1)")
    calls = [list(c) for c in docker.calls if list(c)[0] == "docker"]
    assert calls[0][:3] == ["docker", "volume", "create"]  # refused by the test: the sandbox never starts
    assert not any("isol8:python" in c for c in calls)
    assert ["docker", "volume", "rm", "-f", calls[0][-1]] in calls  # and what may have been made is removed
