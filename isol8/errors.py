"""The isol8 error hierarchy and the one classifier of engine failures."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from isol8.status import ExitStatus


class Isol8Error(Exception):
    """Base class of every error isol8 reports to its users."""

    exit_status: ExitStatus = ExitStatus.ERROR
    hint: str = ""


class UsageError(Isol8Error):
    exit_status = ExitStatus.USAGE


class ConfigError(Isol8Error):
    """A config file that cannot be read, parsed or validated."""

    exit_status = ExitStatus.USAGE


class EngineError(Isol8Error):
    """A docker/podman call that failed; carries the argv and the engine's output."""

    exit_status = ExitStatus.ERROR

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        *,
        message: str = "",
        hint: str = "",
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.message = message or _first_error_line(stderr) or f"{self.argv[0]} exited with {returncode}"
        if hint:
            self.hint = hint
        super().__init__(self.message)

    def details(self) -> str:
        """A multi-line block with the command and the engine's output, for --debug."""
        lines = [f"command: {shlex.join(self.argv)}", f"return code: {self.returncode}"]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text.strip():
                lines.append(f"{name}:")
                lines.extend(f"    {line}" for line in text.rstrip().splitlines())
        return "\n".join(lines)


class EngineNotFound(EngineError):
    exit_status = ExitStatus.ENGINE_UNAVAILABLE


class EngineUnavailable(EngineError):
    """The daemon or socket does not answer, or the caller may not use it."""

    exit_status = ExitStatus.ENGINE_UNAVAILABLE


class EnginePermissionDenied(EngineUnavailable):
    """The engine answers but refuses this user: retrying cannot help."""


class EngineTransient(EngineError):
    """A failure worth retrying on an idempotent call (connection reset, lock contention...)."""


class ImageNotFound(EngineError):
    pass


class ContainerNotFound(EngineError):
    pass


class BuildFailed(EngineError):
    pass


class EngineTimeout(EngineError):
    pass


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
_NO_IMAGE = ("no such image", "image not known", "unable to find image", "manifest unknown")
_NO_CONTAINER = ("no such container", "no container with name or id")
_DOWN_HINTS = {
    "docker": "start the docker daemon (scripts/ensure-engines docker) or choose podman with --engine podman",
    "podman": "check `podman info`, or choose docker with --engine docker",
}


def classify(argv: Sequence[str], returncode: int | None, stdout: str, stderr: str, engine: str) -> EngineError:
    """The typed error for a failed engine call, chosen from the engine's stderr."""
    low = stderr.lower()
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
    if any(pattern in low for pattern in _NO_IMAGE):
        return ImageNotFound(argv, returncode, stdout, stderr)
    if any(pattern in low for pattern in _NO_CONTAINER):
        return ContainerNotFound(argv, returncode, stdout, stderr)
    if any(pattern in low for pattern in _TRANSIENT):
        return EngineTransient(argv, returncode, stdout, stderr)
    return EngineError(argv, returncode, stdout, stderr)
