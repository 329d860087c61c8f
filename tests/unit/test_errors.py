"""The engine backend's classify over real docker and podman stderr (tests/data, from scripts/record-fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isol8.backends.engine.classify import classify
from isol8.errors import (
    ContainerNotFound,
    EngineError,
    EnginePermissionDenied,
    EngineTransient,
    EngineUnavailable,
    ImageNotFound,
)
from isol8.status import ExitStatus

DATA = Path(__file__).resolve().parent.parent / "data"
ENGINES = ("docker", "podman")

# What each recorded failure must be classified as. None: the engine exits 0, so classify is never asked.
EXPECTED: dict[str, type[EngineError] | None] = {
    "missing-image": ImageNotFound,
    "image-inspect-partial": ImageNotFound,
    "run-missing-image": ImageNotFound,
    "kill-missing-container": ContainerNotFound,
    "rm-missing-container": ContainerNotFound,
    "container-inspect-missing": ContainerNotFound,
    "kill-stopped-container": EngineError,
    "engine-unreachable": EngineUnavailable,
    "permission-denied": EnginePermissionDenied,
    "rm-f-missing-container": None,
    "version": None,
    "images-quiet": None,
    "pull-unreachable": EngineError,  # RegistryUnreachable only for a pull: see the test below
    "pull-bad-reference": EngineError,
}
# (engine, recording) -> reason, for wordings isol8 is known to misclassify; none at present
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def exit_codes(engine: str) -> dict[str, int]:
    return json.loads((DATA / engine / "exit-codes.json").read_text(encoding="utf-8"))


def recorded_stderr() -> list[object]:
    params = []
    for engine in ENGINES:
        for path in sorted((DATA / engine).glob("*.stderr")):
            marks = []
            if (engine, path.stem) in KNOWN_BUGS:
                marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[engine, path.stem], strict=True))
            params.append(pytest.param(engine, path, id=f"{engine}/{path.name}", marks=marks))
    return params


def test_both_engines_were_recorded() -> None:
    for engine in ENGINES:
        names = {p.stem for p in (DATA / engine).glob("*.stderr")}
        assert names == set(EXPECTED), f"tests/data/{engine}: rerun scripts/record-fixtures or update EXPECTED"


@pytest.mark.parametrize(("engine", "path"), recorded_stderr())
def test_recorded_stderr_is_classified(engine: str, path: Path) -> None:
    stderr = path.read_text(encoding="utf-8")
    returncode = exit_codes(engine)[path.stem]
    expected = EXPECTED[path.stem]
    if expected is None:
        assert returncode == 0
        return
    assert returncode != 0
    argv = [engine, "some", "command"]

    error = classify(argv, returncode, "", stderr, engine)

    assert type(error) is expected
    assert error.argv == tuple(argv)
    assert error.returncode == returncode
    assert error.stderr == stderr
    assert error.message.strip()
    assert "\n" not in error.message


@pytest.mark.parametrize("engine", ENGINES)
def test_unreachable_engine_carries_a_hint(engine: str) -> None:
    stderr = (DATA / engine / "engine-unreachable.stderr").read_text(encoding="utf-8")

    error = classify([engine, "version"], exit_codes(engine)["engine-unreachable"], "", stderr, engine)

    assert isinstance(error, EngineUnavailable)
    assert engine in error.hint
    assert f"the {engine} engine is not reachable" in error.message
    assert error.exit_status == ExitStatus.ENGINE_UNAVAILABLE


def test_permission_denied_carries_a_hint_and_is_not_generic_unavailability() -> None:
    stderr = (DATA / "docker" / "permission-denied.stderr").read_text(encoding="utf-8")

    error = classify(["docker", "version"], 1, "", stderr, "docker")

    assert type(error) is EnginePermissionDenied
    assert "docker group" in error.hint
    assert error.message == "permission denied on the docker socket"
    assert error.exit_status == ExitStatus.ENGINE_UNAVAILABLE


# Docker CLI 29 reworded both messages ("docker API" for "Docker daemon"); this machine's docker 28.2
# prints the old ones, so these are quoted from user reports rather than recorded.
@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        pytest.param(
            "failed to connect to the docker API at unix:///var/run/docker.sock; check if the path is correct "
            "and if the daemon is running: dial unix /var/run/docker.sock: connect: no such file or directory",
            EngineUnavailable,
            id="down",
        ),
        pytest.param(
            "permission denied while trying to connect to the docker API at unix:///var/run/docker.sock",
            EnginePermissionDenied,
            id="permission",
        ),
    ],
)
def test_newer_docker_wordings(stderr: str, expected: type[EngineError]) -> None:
    assert type(classify(["docker", "ps"], 1, "", stderr, "docker")) is expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "stderr",
    [
        "Error: creating container storage: database is locked",
        'Error: Get "http://d/v4.3.1/libpod/containers/json": read unix @->/run/podman/podman.sock: '
        "read: connection reset by peer",
        "Error response from daemon: unexpected EOF",
        'Error response from daemon: Get "https://registry.example.com/v2/": dial tcp: '
        "lookup registry.example.com on 127.0.0.53:53: read udp 127.0.0.1:40000->127.0.0.53:53: i/o timeout",
    ],
)
def test_transient_failures(engine: str, stderr: str) -> None:
    error = classify([engine, "images"], 125, "", stderr, engine)

    assert type(error) is EngineTransient


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_failure_is_a_plain_engine_error_with_the_error_line(engine: str) -> None:
    stderr = "WARNING: something harmless\nError: unknown flag: --frobnicate\nSee 'podman run --help'\n"

    error = classify([engine, "run", "--frobnicate"], 125, "", stderr, engine)

    assert type(error) is EngineError
    assert error.message == "Error: unknown flag: --frobnicate"
    assert error.hint == ""


# ---- pulls: the registry out of reach, or its answer -------------------------------------------


@pytest.mark.parametrize(
    ("engine", "recording", "expected"),
    [
        ("docker", "pull-unreachable", "RegistryUnreachable"),
        ("podman", "pull-unreachable", "RegistryUnreachable"),
        ("docker", "pull-bad-reference", "EngineError"),
        ("podman", "pull-bad-reference", "EngineError"),
    ],
)
def test_a_pull_that_cannot_reach_the_registry_is_told_from_an_answer(
    engine: str, recording: str, expected: str
) -> None:
    from isol8.backends.engine.classify import classify

    stderr = (Path(__file__).parents[1] / "data" / engine / f"{recording}.stderr").read_text()
    error = classify((engine, "pull", "-q", "x"), 1, "", stderr, engine)  # argv as EngineBackend.call gives it
    assert type(error).__name__ == expected
    assert error.message == stderr.strip().splitlines()[0]
    not_a_pull = classify([engine, "run", "x"], 1, "", stderr, engine)
    assert type(not_a_pull).__name__ != "RegistryUnreachable"


# recorded here from endpoints that do not answer (tests/integration/test_remote_engines.py reaches them for real)
@pytest.mark.parametrize(
    ("engine", "stderr"),
    [
        (
            "docker",
            'error during connect: Get "http://docker.example.com/v1.50/version": command [ssh -o '
            "ConnectTimeout=30 -T -p 1 -- 127.0.0.1 docker system dial-stdio] has exited with exit status 255, "
            "make sure the URL is valid, and Docker 18.09 or later is installed on the remote host: "
            "stderr=ssh: connect to host 127.0.0.1 port 1: Connection refused",
        ),
        (
            "podman",
            'Error: unable to connect to Podman socket: Get "http://d/v4.3.1/libpod/_ping": dial unix '
            "/tmp/none.sock: connect: no such file or directory",
        ),
        ("podman", "Error: failed to connect: dial tcp 127.0.0.1:1: connect: connection refused"),
        (
            "podman",
            "Error: failed to connect: ssh: handshake failed: ssh: unable to authenticate, attempted methods "
            "[none], no supported methods remain",
        ),
    ],
)
def test_an_endpoint_that_does_not_answer_is_the_engine_unavailable(engine: str, stderr: str) -> None:
    error = classify([engine, "--url", "x", "run"], 125, "", stderr, engine, "run")
    assert type(error) is EngineUnavailable, error


def test_the_command_after_the_endpoints_options_decides_a_pull() -> None:
    stderr = "Error: dial tcp: lookup registry.example.com: no such host"
    assert (
        type(classify(["docker", "--context", "ci", "pull", "-q", "x"], 1, "", stderr, "docker", "pull")).__name__
        == "RegistryUnreachable"
    )
    assert type(classify(["docker", "--context", "ci", "run", "x"], 1, "", stderr, "docker", "run")) is EngineError


def test_an_image_without_the_profile_label_on_a_remote_podman_says_so() -> None:
    stderr = "Error: no seccomp policy defined by image"
    error = classify(["podman", "--url", "unix:///s", "run", "alpine"], 125, "", stderr, "podman", "run")
    assert "carries no seccomp profile" in error.message and "isol8 build" in error.hint
