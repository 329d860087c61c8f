"""The one classifier of docker/podman failures: the typed error for a call, chosen from the engine's stderr."""

from __future__ import annotations

from collections.abc import Sequence

from isol8.errors import (
    ContainerNameInUse,
    ContainerNotFound,
    EngineError,
    EnginePermissionDenied,
    EngineTransient,
    EngineUnavailable,
    ImageNotFound,
    RegistryUnreachable,
)


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        low = line.lower()
        if low.startswith(("error", "docker:", "podman:")) or "error response from daemon" in low:
            return line
    return lines[-1] if lines else ""


# Lowercased stderr substrings, checked in this order. The wordings of both engines are
# listed side by side; tests/unit/test_errors.py pins each against real engine output.
_UNAVAILABLE = (
    "cannot connect to the docker daemon",
    "failed to connect to the docker api",
    "error during connect",
    "is the docker daemon running",
    "cannot connect to podman",
    "unable to connect to podman",
    "error: failed to connect: ",  # podman's remote client (--url ssh://, --connection)
)
_PERMISSION = (
    "permission denied while trying to connect to the docker daemon socket",
    "permission denied while trying to connect to the docker api",
    "connect: permission denied",  # podman's wording for a socket it may not use
)
_TRANSIENT = (
    "connection refused",
    "connection reset by peer",
    "unexpected eof",
    "i/o timeout",
    "context deadline exceeded",
    "request canceled while waiting for connection",
    "database is locked",
    "tls handshake timeout",
)
# a pull's failure to reach the registry, as opposed to a registry's answer (unknown, denied)
_REGISTRY_DOWN = (
    "no such host",
    "temporary failure in name resolution",
    "server misbehaving",
    "network is unreachable",
    "no route to host",
    "connection refused",
    "i/o timeout",
    "tls handshake timeout",
    "context deadline exceeded",
)
# a remote podman's --seccomp-policy=image on an image without the io.containers.seccomp.profile label
NO_SECCOMP_LABEL = "no seccomp policy defined by image"
_NO_IMAGE = ("no such image", "image not known", "unable to find image", "manifest unknown")
_NO_CONTAINER = ("no such container", "no container with name or id")
_DOWN_HINTS = {
    "docker": "start the docker daemon (scripts/ensure-engines docker) or choose podman with --engine podman",
    "podman": "check `podman info`, or choose docker with --engine docker",
}


def classify(
    argv: Sequence[str], returncode: int | None, stdout: str, stderr: str, engine: str, command: str | None = None
) -> EngineError:
    """The typed error for a failed engine call, chosen from the engine's stderr; command: the
    engine's command (`pull`...), which follows the endpoint's options (argv[1] without any)."""
    low = stderr.lower()
    command = argv[1] if command is None and len(argv) > 1 else command
    if any(pattern in low for pattern in _PERMISSION):
        return EnginePermissionDenied(
            argv,
            returncode,
            stdout,
            stderr,
            message=f"permission denied on the {engine} socket",
            hint="add your user to the docker group, run as root, or use rootless podman (--engine podman)",
        )
    if any(pattern in low for pattern in _UNAVAILABLE):
        return EngineUnavailable(
            argv,
            returncode,
            stdout,
            stderr,
            message=f"the {engine} engine is not reachable: {_first_error_line(stderr)}",
            hint=_DOWN_HINTS.get(engine, ""),
        )
    message = _first_error_line(stderr)
    if NO_SECCOMP_LABEL in low:
        return EngineError(
            argv,
            returncode,
            stdout,
            stderr,
            message="the image carries no seccomp profile, which a remote podman needs (it cannot read isol8's file)",
            hint="use an image built by isol8 (`isol8 setup`, `isol8 build`, or FROM isol8:<runtime>) on that engine",
        )
    if command == "pull" and any(pattern in low for pattern in _REGISTRY_DOWN):
        return RegistryUnreachable(argv, returncode, stdout, stderr, message=message)
    if any(pattern in low for pattern in _NO_IMAGE):
        return ImageNotFound(argv, returncode, stdout, stderr, message=message)
    if any(pattern in low for pattern in _NO_CONTAINER):
        return ContainerNotFound(argv, returncode, stdout, stderr, message=message)
    if "container name" in low and "already in use" in low:
        return ContainerNameInUse(argv, returncode, stdout, stderr, message=message)
    if any(pattern in low for pattern in _TRANSIENT):
        return EngineTransient(argv, returncode, stdout, stderr, message=message)
    return EngineError(argv, returncode, stdout, stderr, message=message)
