"""The engine backend's side of the seam over a faked engine binary (pytest-subprocess `fp`, strict, exact argv):
standby containers, exec'd files, probes, ownership, and cache keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from isol8 import labels as L
from isol8.backends import reaper
from isol8.backends.engine import argv as A
from isol8.backends.engine import backend as backend_module
from isol8.backends.engine.backend import EngineBackend
from isol8.backends.engine.dialect import DOCKER, PODMAN, Dialect
from isol8.backends.engine.retry import RetryPolicy
from isol8.core.sandbox import SANDBOX_USER, ContainerSpec, SandboxPolicy
from isol8.errors import ContainerNameInUse, ContainerNotFound, EngineError, EngineTimeout, FileTooLarge

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
    assert A.read_file_argv(d, name="c", path="/sandbox/-n", limit=5) == [
        d.binary,
        "exec",
        "--user",
        SANDBOX_USER,
        "c",
        "/bin/bash",
        "-c",
        '[ -e "$1" ] || { echo "no such file: $1" >&2; exit 1; }; '
        '[ -f "$1" ] || { echo "not a regular file: $1" >&2; exit 1; }; '
        'exec /usr/bin/head -c "$2" -- "$1"',
        "isol8",
        "/sandbox/-n",
        "5",
    ]


@DIALECTS
def test_probe_argv_is_a_named_labelled_locked_down_throwaway_run(d: Dialect) -> None:
    policy = SandboxPolicy(memory="256m")
    labels = {"org.isol8.run.id": "isol8-probe-1"}
    argv = A.probe_argv(
        d, name="isol8-probe-1", image="img", policy=policy, labels=labels, command=["python3", "-c", "x"]
    )
    assert argv == [
        d.binary,
        "run",
        "--rm",
        "--name",
        "isol8-probe-1",
        "--pull",
        "never",
        "--log-driver",
        "none",
        "--label",
        "org.isol8.run.id=isol8-probe-1",
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
    argv = A.read_file_argv(d, name="c", path="/sandbox/x", limit=11)  # asks for one byte over the cap
    fp.register(argv, stdout=[b"\xff\xfe raw"])
    assert backend(d).read_file("c", "/sandbox/x", limit=10) == b"\xff\xfe raw\n"
    fp.register(argv, returncode=1, stderr="no such file: /sandbox/x")
    with pytest.raises(EngineError) as caught:
        backend(d).read_file("c", "/sandbox/x", limit=10)
    assert "no such file" in caught.value.stderr
    missing = (DATA / d.name / "rm-missing-container.stderr").read_text()
    fp.register(argv, returncode=1, stderr=missing)
    with pytest.raises(ContainerNotFound):
        backend(d).read_file("c", "/sandbox/x", limit=10)


@DIALECTS
def test_read_file_over_the_cap_is_refused_whole(fp: Any, d: Dialect) -> None:
    fp.register(A.read_file_argv(d, name="c", path="/sandbox/x", limit=4), stdout=b"abcd")
    with pytest.raises(FileTooLarge) as caught:
        backend(d).read_file("c", "/sandbox/x", limit=3)
    assert (caught.value.path, caught.value.limit) == ("/sandbox/x", 3)


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
def test_a_session_that_outlives_isol8_has_no_owner_and_a_taken_name_removes_nothing(
    fp: Any, d: Dialect, watched: list[str]
) -> None:
    s = spec()
    argv = A.standby_argv(d, name=s.name, image=s.image, policy=s.policy, labels=s.labels)
    fp.register(argv, returncode=125, stderr='Error: the container name "x" is already in use by 0123')
    with pytest.raises(ContainerNameInUse):
        backend(d).start_standby(s, outlives=True)
    assert watched == [] and fp.call_count(A.rm_argv(d, [s.name])) == 0  # it is another's
    fp.register(argv, returncode=125, stderr="Error: something else failed")
    with pytest.raises(EngineError):
        backend(d).start_standby(s, outlives=True)
    assert fp.call_count(A.rm_argv(d, [s.name])) == 0  # by now the name may be another replica's session
    fp.register(argv, stdout="0123abcd\n")
    assert backend(d).start_standby(s, outlives=True) == "0123abcd"  # its id


def probe_argv(d: Dialect, name: str, policy: SandboxPolicy, command: list[str]) -> list[str]:
    labels = {**L.run_labels(name), **reaper.owner_label()}
    return A.probe_argv(d, name=name, image="img", policy=policy, labels=labels, command=command)


@pytest.fixture
def probe_name(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(L, "container_name", lambda kind="": f"isol8-{kind}-1")
    return "isol8-probe-1"


@DIALECTS
def test_probe_captures_and_never_raises_for_the_commands_own_failure(
    fp: Any, d: Dialect, probe_name: str, watched: list[str]
) -> None:
    policy = SandboxPolicy()
    fp.register(probe_argv(d, probe_name, policy, ["bash", "-c", "x"]), returncode=3, stdout="o")
    fp.register(A.rm_argv(d, [probe_name]))
    done = backend(d).probe("img", ["bash", "-c", "x"], policy, timeout=5)
    assert (done.returncode, done.stdout.strip()) == (3, "o")
    assert watched == [probe_name]  # removed by the watcher, were isol8 to die during the probe
    assert fp.call_count(A.rm_argv(d, [probe_name])) == 1  # a failure may leave it behind


@DIALECTS
def test_a_probe_that_hangs_is_removed(fp: Any, d: Dialect, probe_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = backend_module.run_process

    def hangs(argv: list[str], **kwargs: Any) -> Any:
        if argv[1] == "run":
            raise EngineTimeout(argv, None, "", "", message="did not answer")
        return real(argv, **kwargs)

    policy = SandboxPolicy()
    monkeypatch.setattr(backend_module, "run_process", hangs)
    fp.register(A.rm_argv(d, [probe_name]))
    with pytest.raises(EngineTimeout):
        backend(d).probe("img", ["sleep", "9"], policy, timeout=0.1)
    assert fp.call_count(A.rm_argv(d, [probe_name])) == 1


@DIALECTS
def test_a_probe_that_succeeds_costs_one_engine_call(
    fp: Any, d: Dialect, probe_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[str] = []
    monkeypatch.setattr(reaper, "release", released.append)
    fp.register(probe_argv(d, probe_name, SandboxPolicy(), ["true"]))
    backend(d).probe("img", ["true"], SandboxPolicy(), timeout=5)
    assert released == [probe_name]  # --rm removed it: not the watcher's any more


def test_removed_containers_are_no_longer_watched(fp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[str] = []
    monkeypatch.setattr(reaper, "release", released.append)
    fp.register(A.rm_argv(DOCKER, ["a", "b"]))
    backend(DOCKER).remove_containers(["a", "b"])
    assert released == ["a", "b"]


@pytest.mark.parametrize(
    ("engine", "env", "flags", "key"),
    [
        (DOCKER, {}, (), "docker"),
        (DOCKER, {"DOCKER_HOST": "ssh://a"}, (), "docker-"),
        (DOCKER, {"DOCKER_CONTEXT": "ci"}, (), "docker-"),
        (DOCKER, {}, ("--context", "ci"), "docker-"),
        (DOCKER, {"CONTAINER_HOST": "ssh://b"}, (), "docker"),  # podman's: docker's client ignores it
        (PODMAN, {"CONTAINER_HOST": "ssh://b"}, (), "podman-"),
        (PODMAN, {}, ("--url", "unix:///s.sock"), "podman-"),
    ],
)
def test_the_cache_key_names_the_engine_and_its_endpoint(
    monkeypatch: pytest.MonkeyPatch, engine: Dialect, env: dict[str, str], flags: tuple[str, ...], key: str
) -> None:
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINER_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    got = backend(engine._replace(global_flags=flags)).cache_key
    assert got == key if key in ("docker", "podman") else (got.startswith(key) and len(got) == len(key) + 8)


def test_two_endpoints_of_one_engine_never_share_a_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    keys = {backend(DOCKER._replace(global_flags=("--context", c))).cache_key for c in ("a", "b")}
    monkeypatch.setenv("DOCKER_HOST", "ssh://a")
    keys.add(backend(DOCKER).cache_key)
    assert len(keys) == 3


def test_a_registrys_images_are_read_with_skopeo_skipping_one_that_cannot_be_and_an_empty_repository_has_none(
    fp: Any,
) -> None:
    repo = "127.0.0.1:5000/team/python"
    tags = '{"Tags": ["a", "--help", "b"]}'  # a tag the engines would refuse is never asked about
    fp.register(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"], stdout=tags)
    fp.register(["skopeo", "inspect", "--tls-verify=false", f"docker://{repo}:b"], returncode=1, stderr="FATA bad")
    inspected = '{"Digest": "sha256:d1", "Created": "2026-12-01T10:00:00Z", "Labels": {"org.isol8.runtime": "python"}}'
    fp.register(["skopeo", "inspect", "--tls-verify=false", f"docker://{repo}:a"], stdout=inspected)
    [info] = backend(PODMAN).registry_images(repo, tls_verify=False)
    assert (info.id, info.tags, info.labels) == ("sha256:d1", (f"{repo}:a",), {"org.isol8.runtime": "python"})
    unknown = "FATA[0000] Error listing repository tags: fetching tags list: repository name not known to registry"
    fp.register(["skopeo", "list-tags", f"docker://{repo}"], returncode=1, stderr=unknown)
    assert backend(DOCKER).registry_images(repo) == []


def test_a_registry_that_refuses_is_unreadable_and_says_why(fp: Any) -> None:
    from isol8.errors import RegistryUnreadable

    refused = "FATA[0000] Error listing repository tags: pinging container registry r:1: connection refused"
    fp.register(["skopeo", "list-tags", "docker://r:1/t/python"], returncode=1, stderr=refused)
    with pytest.raises(RegistryUnreadable, match="connection refused"):
        backend(DOCKER).registry_images("r:1/t/python")
