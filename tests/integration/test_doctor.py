"""isol8 doctor against real engines: all ✓ where things work, ✗ with a hint where they do not."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Isol8, run_isol8


def test_all_checks_pass_on_a_working_machine(isol8: Isol8, tmp_path: Path) -> None:
    done = isol8("doctor", cwd=tmp_path)
    assert done.status == 0, done.stdout
    lines = [line for line in done.stdout.splitlines() if not line.startswith("    hint:")]
    assert all(line.startswith("✓ ") for line in lines[:-1]), done.stdout
    assert lines[-1] == "isol8 run works"
    assert "✓ sandbox: starts; isol8's profile in force, user namespaces blocked" in lines
    shown = json.loads(isol8("doctor", "--json", cwd=tmp_path).stdout)
    assert shown["ok"] is True
    assert {c["name"] for c in shown["checks"]} >= {"engine", "cgroups", "image isol8:python", "sandbox", "disk"}


def test_the_registries_answer_from_a_container(isol8: Isol8, tmp_path: Path) -> None:
    done = isol8("doctor", "--network", cwd=tmp_path)
    assert done.status == 0, done.stdout
    assert "✓ package index: `python3 -m pip index versions six`: six (" in done.stdout
    assert "✓ npm registry: `npm view is-number version`: " in done.stdout


def test_a_stopped_daemon_is_a_failure_with_a_hint(tmp_path: Path) -> None:
    """docker only: podman has no daemon. A socket nobody listens on is what a stopped dockerd leaves."""
    done = run_isol8("docker", "doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"}, cwd=tmp_path)
    assert done.status == 1
    lines = done.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith("✗ ")]
    assert [lines[i].split(":")[0] for i in failed] == ["✗ engine"]
    assert "not reachable" in lines[failed[0]]
    assert lines[failed[0] + 1].startswith("    hint: start the docker daemon")
    assert lines[-1] == "isol8 run will not work: 1 problem(s) above"


@pytest.fixture
def bun_image_missing(engine: str) -> Iterator[None]:
    """isol8:bun untagged for the test (kept under another name), then put back."""
    name = "isol8:bun" if engine == "docker" else "localhost/isol8:bun"
    aside = f"{name}-doctor-aside"
    subprocess.run([engine, "tag", name, aside], check=True, capture_output=True)
    subprocess.run([engine, "rmi", name], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([engine, "tag", aside, name], check=True, capture_output=True)
        subprocess.run([engine, "rmi", aside], capture_output=True)


def test_a_missing_runtime_image_is_a_failure_with_a_hint(
    isol8: Isol8, tmp_path: Path, bun_image_missing: None
) -> None:
    done = isol8("doctor", cwd=tmp_path)
    assert done.status == 1
    lines = done.stdout.splitlines()
    assert lines[lines.index("✗ image isol8:bun: missing") + 1] == "    hint: isol8 setup -r bun"
    assert [line for line in lines if line.startswith("✗ ")] == ["✗ image isol8:bun: missing"]


def test_an_invalid_config_is_a_failure_and_the_rest_is_still_checked(isol8: Isol8, tmp_path: Path) -> None:
    (tmp_path / "isol8.config.yaml").write_text("defaults:\n  memoryLimt: 1g\n")
    done = isol8("doctor", cwd=tmp_path)
    assert done.status == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"✗ config: {tmp_path / 'isol8.config.yaml'}: defaults.memoryLimt: unknown key")
    assert "✓ sandbox: starts; isol8's profile in force, user namespaces blocked" in lines


def test_a_profile_that_lets_code_make_user_namespaces_is_caught(isol8: Isol8, tmp_path: Path) -> None:
    """A weakened security.seccompProfile (everything allowed): the sandbox check says so."""
    profile = tmp_path / "allow-all.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    (tmp_path / "isol8.config.json").write_text(json.dumps({"security": {"seccompProfile": str(profile)}}))
    done = isol8("doctor", cwd=tmp_path)
    assert done.status == 1
    [sandbox] = [line for line in done.stdout.splitlines() if line.startswith(("✓ sandbox", "✗ sandbox"))]
    assert sandbox.startswith(f"✗ sandbox: with {profile}: ")
    assert "userns=open" in sandbox


def test_the_sandbox_probe_has_no_network_whatever_the_config_says(isol8: Isol8, tmp_path: Path) -> None:
    (tmp_path / "isol8.config.json").write_text('{"defaults": {"network": "host"}}')
    done = isol8("--debug", "doctor", cwd=tmp_path)
    assert done.status == 0, done.stdout
    runs = [line for line in done.stderr.splitlines() if " run " in line and "isol8-reaper" not in line]
    assert runs and all("--network none" in line for line in runs), runs


def test_a_bad_ca_bundle_does_not_stop_the_network_checks_from_reporting(isol8: Isol8, tmp_path: Path) -> None:
    done = isol8("doctor", "--network", "--json", cwd=tmp_path, env={"ISOL8_CA_BUNDLE": str(tmp_path / "nope.pem")})
    shown = json.loads(done.stdout)
    by_name = {c["name"]: c for c in shown["checks"]}
    assert by_name["CA bundle"]["ok"] is False
    assert by_name["registries"]["detail"].startswith("not tried: caBundle: no such file")
    assert shown["ok"] is True and done.status == 0  # a run needs neither
