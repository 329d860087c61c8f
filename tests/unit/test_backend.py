"""The engine backend's side of the seam over a faked engine binary (pytest-subprocess `fp`, strict, exact argv):
standby containers, exec'd files, probes, ownership, and cache keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from isol8.backends.engine import argv as A
from isol8.backends.engine import reaper
from isol8.backends.engine.backend import EngineBackend, RetryPolicy
from isol8.backends.engine.dialect import DOCKER, PODMAN, Dialect
from isol8.core.sandbox import SANDBOX_USER, ContainerSpec, SandboxPolicy
from isol8.errors import ContainerNotFound, EngineError

DIALECTS = pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(autouse=True)
def watched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reaper's watcher is a real process: tests record what it would watch instead."""
    names: list[str] = []
    monkeypatch.setattr(reaper, "watch", lambda dialect, name: names.append(name))
    return names


def backend(d: Dialect) -> EngineBackend:
    return EngineBackend(d, retry=RetryPolicy(attempts=1), sleep=lambda s: None)


def spec(name: str = "isol8-abc") -> ContainerSpec:
    return ContainerSpec(name, "isol8:python", SandboxPolicy(), {"org.isol8.run.id": name})


@DIALECTS
def test_file_argv_run_as_the_sandbox_user_with_the_path_as_its_own_argument(d: Dialect) -> None:
    assert A.write_file_argv(d, name="c", path="/sandbox/a b;$(x)") == [
        d.binary,
        "exec",
        "-i",
        "--user",
        SANDBOX_USER,
        "c",
        "/bin/bash",
        "-c",
        'mkdir -p -- "$(dirname -- "$1")" && cat >"$1"',
        "isol8",
        "/sandbox/a b;$(x)",
    ]
    assert A.read_file_argv(d, name="c", path="/sandbox/-n") == [
        d.binary,
        "exec",
        "--user",
        SANDBOX_USER,
        "c",
        "/bin/cat",
        "--",
        "/sandbox/-n",
    ]


@DIALECTS
def test_probe_argv_is_a_locked_down_throwaway_run(d: Dialect) -> None:
    policy = SandboxPolicy(memory="256m")
    assert A.probe_argv(d, image="img", policy=policy, command=["python3", "-c", "x"]) == [
        d.binary,
        "run",
        "--rm",
        "--log-driver",
        "none",
        *A.sandbox_flags(d, policy),
        "--entrypoint",
        "python3",
        "img",
        "-c",
        "x",
    ]


@DIALECTS
def test_write_file_sends_the_bytes_on_stdin(fp: Any, d: Dialect) -> None:
    argv = A.write_file_argv(d, name="c", path="/sandbox/x")
    got: list[bytes] = []
    fp.register(argv, stdin_callable=got.append)
    backend(d).write_file("c", "/sandbox/x", b"\x00data\xff")
    assert got == [b"\x00data\xff"]


@DIALECTS
def test_read_file_returns_bytes_and_types_its_failures(fp: Any, d: Dialect) -> None:
    argv = A.read_file_argv(d, name="c", path="/sandbox/x")
    fp.register(argv, stdout=[b"\xff\xfe raw"])
    assert backend(d).read_file("c", "/sandbox/x") == b"\xff\xfe raw\n"
    fp.register(argv, returncode=1, stderr="/bin/cat: /sandbox/x: No such file or directory")
    with pytest.raises(EngineError) as caught:
        backend(d).read_file("c", "/sandbox/x")
    assert "No such file" in caught.value.stderr
    missing = (DATA / d.name / "rm-missing-container.stderr").read_text()
    fp.register(argv, returncode=1, stderr=missing)
    with pytest.raises(ContainerNotFound):
        backend(d).read_file("c", "/sandbox/x")


@DIALECTS
def test_a_standby_container_that_fails_to_start_is_removed(fp: Any, d: Dialect, watched: list[str]) -> None:
    s = spec()
    argv = A.standby_argv(d, name=s.name, image=s.image, policy=s.policy, labels={**s.labels, **reaper.owner_label()})
    fp.register(argv, returncode=125, stderr="Error: no space left on device")
    fp.register(A.rm_argv(d, [s.name]))
    with pytest.raises(EngineError, match="no space left"):
        backend(d).start_standby(s)
    assert watched == [s.name]  # watched before it was started
    assert fp.call_count(A.rm_argv(d, [s.name])) == 1


@DIALECTS
def test_runs_and_standbys_carry_the_owner_label(fp: Any, d: Dialect) -> None:
    s = spec()
    argv = A.standby_argv(d, name=s.name, image=s.image, policy=s.policy, labels={**s.labels, **reaper.owner_label()})
    fp.register(argv, stdout="id\n")
    backend(d).start_standby(s)
    owner = f"org.isol8.run.owner={reaper.owner_label()['org.isol8.run.owner']}"
    assert owner in argv


@DIALECTS
def test_sweep_is_a_root_kill_of_everything_but_pid_1(fp: Any, d: Dialect) -> None:
    fp.register(A.sweep_argv(d, name="c"))
    backend(d).sweep("c")
    assert fp.call_count(A.sweep_argv(d, name="c")) == 1


@DIALECTS
def test_probe_captures_and_never_raises_for_the_commands_own_failure(fp: Any, d: Dialect) -> None:
    policy = SandboxPolicy()
    fp.register(A.probe_argv(d, image="img", policy=policy, command=["bash", "-c", "x"]), returncode=3, stdout="o")
    done = backend(d).probe("img", ["bash", "-c", "x"], policy, timeout=5)
    assert (done.returncode, done.stdout.strip()) == (3, "o")


def test_removed_containers_are_no_longer_watched(fp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[str] = []
    monkeypatch.setattr(reaper, "release", released.append)
    fp.register(A.rm_argv(DOCKER, ["a", "b"]))
    backend(DOCKER).remove_containers(["a", "b"])
    assert released == ["a", "b"]


@pytest.mark.parametrize(
    ("env", "key"),
    [({}, "docker"), ({"DOCKER_HOST": "ssh://a"}, "docker-"), ({"CONTAINER_HOST": "ssh://b"}, "docker-")],
)
def test_the_cache_key_names_the_engine_and_its_endpoint(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], key: str
) -> None:
    for name in ("DOCKER_HOST", "CONTAINER_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    got = backend(DOCKER).cache_key
    assert got == key if key == "docker" else (got.startswith(key) and len(got) == len(key) + 8)
