"""Engine flows over a faked engine binary (pytest-subprocess `fp`, strict, exact argv), and run_process."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from isol8.backends.engine import detect
from isol8.backends.engine.backend import EngineBackend
from isol8.backends.engine.detect import select_dialect
from isol8.backends.engine.dialect import DOCKER, PODMAN, Dialect
from isol8.backends.engine.retry import RetryPolicy
from isol8.errors import (
    EngineError,
    EngineNotFound,
    EnginePermissionDenied,
    EngineTimeout,
    EngineTransient,
    EngineUnavailable,
    UsageError,
)
from isol8.process import Completed, run_process

DATA = Path(__file__).resolve().parent.parent / "data"
DIALECTS = pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
VERSION_ARGV = {
    "docker": ["docker", "version", "--format", "{{.Server.Version}}"],
    "podman": ["podman", "version", "--format", "{{.Client.Version}}"],
}
# image refs as Engine.inspect_images passes them on: podman stores local builds as localhost/NAME
REFS = {
    "docker": ["isol8:python", "isol8:fixture-missing"],
    "podman": ["localhost/isol8:python", "localhost/isol8:fixture-missing"],
}


def recording(d: Dialect, name: str) -> str:
    return (DATA / d.name / name).read_text(encoding="utf-8")


def recorded_exit(d: Dialect, name: str) -> int:
    return int(json.loads(recording(d, "exit-codes.json"))[name])


def register_recorded(
    fp: Any, d: Dialect, argv: list[str], name: str, *, stdout: str = "", occurrences: int = 1
) -> None:
    """Make argv answer as the engine did when scripts/record-fixtures recorded NAME."""
    fp.register(
        argv,
        stdout=stdout,
        stderr=recording(d, f"{name}.stderr"),
        returncode=recorded_exit(d, name),
        occurrences=occurrences,
    )


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def engine_for(d: Dialect, sleeps: Callable[[float], None], attempts: int | None = None) -> EngineBackend:
    retry = RetryPolicy() if attempts is None else RetryPolicy(attempts=attempts)
    return EngineBackend(d, retry=retry, sleep=sleeps)


# ---- version and retries -------------------------------------------------------------------------


@DIALECTS
def test_version(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    fp.register(VERSION_ARGV[d.name], stdout=recording(d, "version.stdout"))

    version = engine_for(d, sleeps).version()

    assert version == {"docker": "20.10.24+dfsg1", "podman": "4.3.1"}[d.name]
    assert fp.call_count(VERSION_ARGV[d.name]) == 1


@DIALECTS
@pytest.mark.parametrize("attempts", [None, 2])
def test_version_retries_an_unreachable_engine_then_gives_up(
    fp: Any, d: Dialect, sleeps: Sleeps, attempts: int | None
) -> None:
    expected_calls = RetryPolicy().attempts if attempts is None else attempts
    argv = VERSION_ARGV[d.name]
    register_recorded(fp, d, argv, "engine-unreachable", occurrences=expected_calls)

    with pytest.raises(EngineUnavailable) as caught:
        engine_for(d, sleeps, attempts).version()

    assert type(caught.value) is EngineUnavailable
    assert caught.value.hint
    assert fp.call_count(argv) == expected_calls
    assert len(sleeps) == expected_calls - 1


def test_retry_waits_grow_and_are_capped(fp: Any, sleeps: Sleeps) -> None:
    argv = VERSION_ARGV["docker"]
    register_recorded(fp, DOCKER, argv, "engine-unreachable", occurrences=5)

    with pytest.raises(EngineUnavailable):
        EngineBackend(DOCKER, retry=RetryPolicy(attempts=5, first_wait=0.2, max_wait=1.0), sleep=sleeps).version()

    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.0])


@DIALECTS
def test_version_recovers_when_the_engine_comes_back(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = VERSION_ARGV[d.name]
    register_recorded(fp, d, argv, "engine-unreachable", occurrences=2)
    fp.register(argv, stdout="27.1.0\n")

    assert engine_for(d, sleeps).version() == "27.1.0"
    assert fp.call_count(argv) == 3


@DIALECTS
@pytest.mark.parametrize("stdout", ["\n", "<no value>\n"])
def test_version_without_a_server_version_is_unavailable(fp: Any, d: Dialect, sleeps: Sleeps, stdout: str) -> None:
    fp.register(VERSION_ARGV[d.name], stdout=stdout)

    with pytest.raises(EngineUnavailable, match="did not report a version"):
        engine_for(d, sleeps).version()


@pytest.mark.parametrize(
    "d",
    [
        DOCKER,
        PODMAN,
    ],
    ids=lambda d: d.name,
)
def test_permission_denied_is_not_retried(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = VERSION_ARGV[d.name]
    register_recorded(fp, d, argv, "permission-denied", occurrences=RetryPolicy().attempts)

    with pytest.raises(EnginePermissionDenied):
        engine_for(d, sleeps).version()

    assert fp.call_count(argv) == 1
    assert sleeps == []


@DIALECTS
def test_missing_binary_is_engine_not_found(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = VERSION_ARGV[d.name]

    def not_installed(process: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", d.binary)

    fp.register(argv, callback=not_installed)

    with pytest.raises(EngineNotFound) as caught:
        engine_for(d, sleeps).version()

    assert caught.value.message == f"{d.binary}: command not found"
    assert caught.value.hint
    assert fp.call_count(argv) == 1


@DIALECTS
def test_a_call_that_times_out_is_engine_timeout_and_not_retried(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    # What subprocess.run raises when the deadline passes; see the wait= variant below for why not `wait=`.
    argv = [d.binary, "images", "-q", "--no-trunc"]

    def hangs(process: object) -> None:
        raise subprocess.TimeoutExpired(argv, 0.1, output=b"sha256:partial", stderr=b"")

    fp.register(argv, callback=hangs)

    with pytest.raises(EngineTimeout) as caught:
        engine_for(d, sleeps).call(argv, timeout=0.1, idempotent=True)

    assert caught.value.stdout == "sha256:partial"
    assert "did not answer within 0.1s" in caught.value.message
    assert fp.call_count(argv) == 1


@pytest.mark.xfail(
    reason="pytest-subprocess 1.6.0 (the latest release): communicate() ignores its timeout, so `wait=` never "
    "raises TimeoutExpired from isol8's communicate(); fixed by aklajnert/pytest-subprocess#210, not yet released. "
    "Not an isol8 bug: remove this mark when the fixed release is installed.",
    strict=True,
)
def test_a_call_that_times_out_with_fp_wait(fp: Any, sleeps: Sleeps) -> None:
    argv = ["docker", "images", "-q", "--no-trunc"]
    fp.register(argv, wait=0.5)

    with pytest.raises(EngineTimeout):
        engine_for(DOCKER, sleeps).call(argv, timeout=0.05)


# ---- images --------------------------------------------------------------------------------------


@DIALECTS
def test_inspect_images_returns_the_images_found_when_one_is_missing(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = [d.binary, "image", "inspect", *REFS[d.name]]
    register_recorded(fp, d, argv, "image-inspect-partial", stdout=recording(d, "image-inspect-partial.json"))

    found = engine_for(d, sleeps).inspect_images(["isol8:python", "isol8:fixture-missing"])

    assert [image.tags for image in found] == [(REFS[d.name][0],)]
    assert found[0].labels["org.isol8.runtime"] == "python"
    assert fp.call_count(argv) == 1


@DIALECTS
def test_image_that_is_missing_is_none(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = [d.binary, "image", "inspect", REFS[d.name][1]]
    register_recorded(fp, d, argv, "missing-image", stdout=recording(d, "missing-image.stdout"))

    assert engine_for(d, sleeps).image("isol8:fixture-missing") is None
    assert fp.call_count(argv) == 1


def test_inspect_no_images_runs_nothing(fp: Any, sleeps: Sleeps) -> None:
    assert engine_for(DOCKER, sleeps).inspect_images([]) == []
    assert len(fp.calls) == 0


@DIALECTS
def test_list_images_strips_sha256(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = [d.binary, "images", "-q", "--no-trunc", "--filter", "label=org.isol8.managed=true"]
    stdout = recording(d, "images-quiet.stdout")
    fp.register(argv, stdout=stdout)

    ids = engine_for(d, sleeps).list_images({"org.isol8.managed": "true"})

    assert ids == [line.removeprefix("sha256:") for line in stdout.split()]
    assert ids and all(len(i) == 64 and ":" not in i for i in ids)


def test_list_images_lists_an_image_with_two_tags_once(fp: Any, sleeps: Sleeps) -> None:
    argv = ["docker", "images", "-q", "--no-trunc"]
    fp.register(argv, stdout=f"sha256:{'a' * 64}\nsha256:{'b' * 64}\nsha256:{'a' * 64}\n")

    assert engine_for(DOCKER, sleeps).list_images({}) == ["a" * 64, "b" * 64]


def test_list_images_retries_a_locked_database(fp: Any, sleeps: Sleeps) -> None:
    argv = ["podman", "images", "-q", "--no-trunc"]
    fp.register(argv, stderr="Error: database is locked\n", returncode=125)
    fp.register(argv, stdout=f"sha256:{'c' * 64}\n")

    assert engine_for(PODMAN, sleeps).list_images({}) == ["c" * 64]
    assert fp.call_count(argv) == 2


def test_a_transient_failure_is_not_retried_on_a_non_idempotent_call(fp: Any, sleeps: Sleeps) -> None:
    argv = ["podman", "images", "-q", "--no-trunc"]
    fp.register(argv, stderr="Error: database is locked\n", returncode=125)

    with pytest.raises(EngineTransient):
        engine_for(PODMAN, sleeps).call(argv)

    assert fp.call_count(argv) == 1


# ---- containers ----------------------------------------------------------------------------------


@DIALECTS
def test_remove_containers_that_rm_f_already_forgives(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = [d.binary, "rm", *d.rm_force, "isol8-gone"]
    register_recorded(fp, d, argv, "rm-f-missing-container")  # exit 0 on both, docker still complains

    engine_for(d, sleeps).remove_containers(["isol8-gone"])

    assert fp.call_count(argv) == 1


@DIALECTS
def test_remove_containers_treats_no_such_container_as_removed(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    rm = [d.binary, "rm", *d.rm_force, "isol8-gone"]
    inspect = [d.binary, "container", "inspect", "isol8-gone"]
    register_recorded(fp, d, rm, "rm-missing-container")
    register_recorded(
        fp, d, inspect, "container-inspect-missing", stdout=recording(d, "container-inspect-missing.stdout")
    )

    engine_for(d, sleeps).remove_containers(["isol8-gone"])

    assert fp.call_count(rm) == 1
    assert fp.call_count(inspect) == 1


@DIALECTS
def test_remove_containers_retries_the_ones_still_there(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    present = json.loads(recording(d, "container-inspect.json"))
    present_id = present[0]["Id"]
    rm_both = [d.binary, "rm", *d.rm_force, "isol8-here", "isol8-gone"]
    inspect = [d.binary, "container", "inspect", "isol8-here", "isol8-gone"]
    rm_rest = [d.binary, "rm", *d.rm_force, present_id]
    register_recorded(fp, d, rm_both, "rm-missing-container")
    register_recorded(fp, d, inspect, "container-inspect-missing", stdout=json.dumps(present))
    fp.register(rm_rest, stdout=present_id + "\n")

    engine_for(d, sleeps).remove_containers(["isol8-here", "isol8-gone"])

    assert [fp.call_count(argv) for argv in (rm_both, inspect, rm_rest)] == [1, 1, 1]


def test_remove_no_containers_runs_nothing(fp: Any, sleeps: Sleeps) -> None:
    engine_for(PODMAN, sleeps).remove_containers([])

    assert len(fp.calls) == 0


@DIALECTS
@pytest.mark.parametrize("recorded", ["kill-stopped-container", "kill-missing-container"])
def test_kill_of_a_stopped_or_missing_container_is_fine(fp: Any, d: Dialect, sleeps: Sleeps, recorded: str) -> None:
    argv = [d.binary, "kill", "isol8-0123"]
    register_recorded(fp, d, argv, recorded)

    engine_for(d, sleeps).kill("isol8-0123")

    assert fp.call_count(argv) == 1


@DIALECTS
def test_kill_raises_other_failures_without_retrying(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = [d.binary, "kill", "isol8-0123"]
    fp.register(argv, stderr="Error: sending signal: operation not permitted\n", returncode=125)

    with pytest.raises(EngineError, match="operation not permitted"):
        engine_for(d, sleeps).kill("isol8-0123")

    assert fp.call_count(argv) == 1


@DIALECTS
def test_kill_when_the_engine_is_unreachable_raises(fp: Any, d: Dialect, sleeps: Sleeps) -> None:
    argv = [d.binary, "kill", "isol8-0123"]
    register_recorded(fp, d, argv, "engine-unreachable")

    with pytest.raises(EngineUnavailable):
        engine_for(d, sleeps).kill("isol8-0123")

    assert fp.call_count(argv) == 1


# ---- select_dialect ------------------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "expected"), [("docker", DOCKER), ("podman", PODMAN)])
def test_select_dialect_explicit(monkeypatch: pytest.MonkeyPatch, choice: str, expected: Dialect) -> None:
    monkeypatch.setattr(detect, "_on_path", lambda name: pytest.fail(f"looked up {name} despite an explicit choice"))

    assert select_dialect(choice, env={}) is expected


@pytest.mark.parametrize("choice", ["lxc", "Docker", "docker "])
def test_select_dialect_unknown(choice: str) -> None:
    with pytest.raises(UsageError, match="unknown engine"):
        select_dialect(choice, env={})


def fake_which(*installed: str) -> Callable[[str], bool]:
    return lambda name: name in installed


def test_on_path_finds_executables_as_shutil_which_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    (tmp_path / "runs").write_text("#!/bin/sh\n")
    (tmp_path / "runs").chmod(0o755)
    (tmp_path / "plain").write_text("")
    (tmp_path / "folder").mkdir()
    monkeypatch.setenv("PATH", f"/nonexistent:{tmp_path}")
    for name in ("runs", "plain", "folder", "missing"):
        assert detect._on_path(name) == (shutil.which(name) is not None), name
    assert detect._on_path("runs") and not detect._on_path("plain")


def test_select_dialect_prefers_podman_when_docker_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_on_path", fake_which("docker", "podman"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)

    assert select_dialect(None) is PODMAN


def test_select_dialect_prefers_docker_when_its_socket_answers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(detect, "_on_path", fake_which("docker", "podman"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "d.sock"))
        server.listen(1)

        assert select_dialect(None, env={"DOCKER_HOST": f"unix://{tmp_path / 'd.sock'}"}) is DOCKER


def test_select_dialect_keeps_a_silent_docker_when_there_is_no_podman(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_on_path", fake_which("docker"))

    assert select_dialect(None, env={"DOCKER_HOST": "unix:///nonexistent.sock"}) is DOCKER


def test_select_dialect_without_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_on_path", fake_which())

    with pytest.raises(EngineNotFound, match="neither docker nor podman"):
        select_dialect(None, env={})


# ---- run_process ---------------------------------------------------------------------------------


def test_run_process_decodes_invalid_utf8_from_a_real_process() -> None:
    done = run_process(["/usr/bin/printf", r"a\377b"], timeout=10)

    assert done == Completed(("/usr/bin/printf", r"a\377b"), 0, "a\ufffdb", "")


def test_run_process_decodes_invalid_utf8_bytes(fp: Any) -> None:
    fp.register(["docker", "logs", "x"], stdout=b"ok \xff\xfe", stderr=b"cut \xe2\x82", returncode=3)

    done = run_process(["docker", "logs", "x"], timeout=10)

    assert done.stdout == "ok \ufffd\ufffd"
    assert done.stderr == "cut \ufffd"
    assert done.returncode == 3


def test_run_process_times_out_a_real_process() -> None:
    with pytest.raises(EngineTimeout, match="did not answer within 0.2s"):
        run_process(["/bin/sleep", "10"], timeout=0.2)


def test_run_process_of_a_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(EngineNotFound) as caught:
        run_process([str(tmp_path / "no-such-engine"), "version"], timeout=10)

    assert caught.value.returncode is None
    assert caught.value.hint
