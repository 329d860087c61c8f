"""isol8 setup and engine selection against real engines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from isol8.core.base_images import context_dir
from tests.integration.conftest import Isol8, run_isol8

RUNTIMES = ("python", "node", "bun", "deno", "bash")
IMAGES = (*RUNTIMES, "proxy")  # what setup builds: every runtime's image and the egress proxy's


def test_second_setup_reports_every_image_up_to_date_quickly(isol8: Isol8) -> None:
    isol8("setup")
    done = isol8("setup")
    assert done.status == 0, done.stderr
    assert done.stdout.splitlines() == [
        line for name in IMAGES for line in done.stdout.splitlines() if line.startswith(f"isol8:{name}: up to date")
    ]
    assert len(done.stdout.splitlines()) == len(IMAGES)
    assert done.seconds < 2.0


def test_editing_a_dockerfile_rebuilds_only_that_runtime(isol8: Isol8, tmp_path: Path, engine: str) -> None:
    for name in IMAGES:
        shutil.copytree(context_dir(name), tmp_path / name)
    with open(tmp_path / "bash" / "Dockerfile", "a") as f:
        f.write("LABEL org.example.edited=yes\n")
    try:
        done = isol8("setup", env={"ISOL8_DOCKERFILES": str(tmp_path)})
        assert done.status == 0, done.stderr
        assert "isol8:bash: built" in done.stdout
        assert [line for line in done.stdout.splitlines() if ": built" in line] == [
            line for line in done.stdout.splitlines() if line.startswith("isol8:bash")
        ]
        assert "Step" in done.stderr or "STEP" in done.stderr  # build progress is visible
        image = "localhost/isol8:bash" if engine == "podman" else "isol8:bash"
        label = subprocess.run(
            [engine, "image", "inspect", "--format", '{{index .Config.Labels "org.example.edited"}}', image],
            capture_output=True,
            text=True,
        )
        assert label.stdout.strip() == "yes"
    finally:
        restored = isol8("setup", "-r", "bash")
        assert "isol8:bash: built" in restored.stdout


def test_a_base_image_named_on_the_command_line_that_cannot_be_had_fails(isol8: Isol8) -> None:
    """--base-image asks for that base now: offline tolerance (for the config's baseImages) does not apply."""
    done = isol8("setup", "-r", "bash", "--base-image", "bash=localhost/isol8-no-such-base:none")
    assert done.status == 1
    [error] = done.stderr.splitlines()
    assert error.startswith(
        "isol8: error: isol8:bash: could not check its base image localhost/isol8-no-such-base:none ("
    )
    assert isol8("run", "--cmd", "echo still fine").stdout == "still fine\n"


def test_a_build_that_fails_exits_1_with_the_engines_error(isol8: Isol8, tmp_path: Path) -> None:
    for rt in RUNTIMES:
        shutil.copytree(context_dir(rt), tmp_path / rt)
    with open(tmp_path / "bash" / "Dockerfile", "a") as f:
        f.write("RUN exit 3\n")
    done = isol8("setup", "-r", "bash", env={"ISOL8_DOCKERFILES": str(tmp_path)})
    assert done.status == 1
    assert "isol8: error: build of isol8:bash failed" in done.stderr
    assert isol8("run", "--cmd", "echo still fine").stdout == "still fine\n"


def test_a_project_file_does_not_hide_the_user_files_base_images(isol8: Isol8, tmp_path: Path) -> None:
    """After the quick start (baseImages in ~/.isol8/config.json), a project file with only
    maxConcurrent changes nothing else: no base image is rebuilt, runs work."""
    (tmp_path / "isol8.config.json").write_text('{"maxConcurrent": 4}')
    setup = isol8("setup", cwd=tmp_path)
    assert setup.status == 0, setup.stderr
    assert len([line for line in setup.stdout.splitlines() if ": up to date" in line]) == len(IMAGES), setup.stdout
    assert isol8("run", "-e", "print(6 * 7)", cwd=tmp_path).stdout == "42\n"
    shown = isol8("config", "--show-origin", cwd=tmp_path)
    origins = {line.split()[1].rstrip(":"): line.split()[0] for line in shown.stdout.splitlines()}
    assert origins["maxConcurrent"] == str(tmp_path / "isol8.config.json")
    user = str(Path.home() / ".isol8" / "config.json")
    assert [origins[f"baseImages.{rt}"] for rt in RUNTIMES] == [user] * 5


UNREACHABLE = "unreachable.invalid/isol8-test/debian:12"


def test_an_unobtainable_base_keeps_the_existing_image_with_one_warning(isol8: Isol8, tmp_path: Path) -> None:
    (tmp_path / "isol8.config.json").write_text(json.dumps({"baseImages": {"bash": UNREACHABLE}}))
    done = isol8("setup", "-r", "bash", cwd=tmp_path)
    assert done.status == 0, done.stderr
    [warning] = done.stderr.splitlines()
    assert warning.startswith(f"isol8: warning: isol8:bash: could not check its base image {UNREACHABLE} (")
    assert done.stdout.startswith("isol8:bash: kept")
    strict = isol8("setup", "-r", "bash", "--strict", cwd=tmp_path)
    assert strict.status == 1
    assert strict.stderr.splitlines() == [warning.replace("isol8: warning: ", "isol8: error: ", 1)]
    forced = isol8("setup", "-r", "bash", "--force", cwd=tmp_path)
    assert forced.status == 1
    assert "isol8: error: build of isol8:bash failed" in forced.stderr
    assert isol8("run", "--cmd", "echo still fine", cwd=tmp_path).stdout == "still fine\n"


def test_a_base_image_reference_the_engine_rejects_is_a_failure_not_a_warning(isol8: Isol8, tmp_path: Path) -> None:
    """Only an out-of-reach registry is tolerated; a reference that is wrong (here, malformed) fails."""
    (tmp_path / "isol8.config.json").write_text(json.dumps({"baseImages": {"bash": "Bad//Ref"}}))
    done = isol8("setup", "-r", "bash", cwd=tmp_path)
    assert done.status == 1
    assert "isol8: error: base image Bad//Ref: " in done.stderr
    assert "invalid reference format" in done.stderr


def test_force_rebuilds(isol8: Isol8) -> None:
    done = isol8("setup", "--force", "-r", "bash")
    assert (done.status, done.stdout.split(":")[:2]) == (0, ["isol8", "bash"])
    assert "built" in done.stdout


def test_docker_daemon_unreachable_fails_fast_with_one_clear_line() -> None:
    # docker only: podman has no daemon to stop
    done = run_isol8("docker", "setup", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.status == 3
    assert done.seconds < 6  # a few bounded retries, then give up
    lines = done.stderr.splitlines()
    assert lines[0].startswith("isol8: error: the docker engine is not reachable")
    assert lines[1].startswith("isol8: hint:")
    assert len(lines) == 2


def test_missing_engine_binary(engine: str, tmp_path: Path) -> None:
    done = run_isol8(engine, "setup", env={"PATH": str(tmp_path)})
    assert done.status == 3
    assert f"isol8: error: {engine}: command not found" in done.stderr


def test_engine_from_environment_and_config(tmp_path: Path, engine: str) -> None:
    import sh

    from tests.integration.conftest import ISOL8

    config = tmp_path / "isol8.config.yaml"
    config.write_text(f"engine: {engine}\n")
    out = sh.Command(ISOL8)(
        "--debug", "run", "--cmd", "true", _cwd=str(tmp_path), _err_to_out=True, _env={**os.environ, "ISOL8_ENGINE": ""}
    )
    assert f"+ {engine} run " in out
    other = "podman" if engine == "docker" else "docker"
    out = sh.Command(ISOL8)(
        "--debug",
        "run",
        "--cmd",
        "true",
        _cwd=str(tmp_path),
        _err_to_out=True,
        _env={**os.environ, "ISOL8_ENGINE": other},
    )
    assert f"+ {other} run " in out
