"""The isol8 error hierarchy and the one classifier of engine failures."""

from __future__ import annotations

from collections.abc import Sequence

from isol8.status import ExitStatus
from isol8.units import InvalidLimit as InvalidLimit  # with its parser, which `isol8 --help` loads alone

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any


class Isol8Error(Exception):
    """Base class of every error isol8 reports to its users."""

    exit_status: int = ExitStatus.ERROR
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
        self.message = message or first_error_line(stderr) or f"{self.argv[0]} exited with {returncode}"
        if hint:
            self.hint = hint
        super().__init__(self.message)

    def details(self) -> str:
        """A multi-line block with the command and the engine's output, for --debug."""
        import shlex

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


class ContainerNameInUse(EngineError):
    """Another container has the name: a create lost its race to it."""


class BuildFailed(EngineError):
    pass


class RegistryUnreachable(EngineError):
    """A pull that could not reach the image's registry (no network, DNS, a refused or timed-out
    connection): the image may well exist, isol8 just cannot check."""


class RegistryUnreadable(Isol8Error):
    """A registry whose images could not be listed or read (skopeo missing, the registry
    unreachable or refusing): nothing shared is found there."""


class BaseImageUnavailable(BuildFailed):
    """A runtime image is out of date and its base image cannot be had: with --strict, a failure."""


class EngineTimeout(EngineError):
    pass


def first_error_line(stderr: str) -> str:
    """The line of a tool's stderr that says what went wrong: the first that looks like an error, else the last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        low = line.lower()
        if low.startswith("error"):
            return line
    return lines[-1] if lines else ""


class RunFailed(EngineError):
    """isol8 or the engine failed before the program ran (exit 125, as `docker run`)."""

    exit_status = ExitStatus.ENGINE_FAILURE


class PackagesNotUnpacked(RunFailed):
    """Run-time installed packages that could not be unpacked into a session's container;
    `unchanged`: it still has what it had (they did not fit), else it lost its earlier ones."""

    def __init__(self, *args: Any, unchanged: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unchanged = unchanged


class PayloadTooLarge(Isol8Error):
    """The files and code do not fit in the sandbox: found before anything starts (exit 125)."""

    exit_status = ExitStatus.ENGINE_FAILURE


class FileTooLarge(Isol8Error):
    """A file to copy out of a container holds more than the cap: refused whole, never cut short."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(f"{path} is larger than {limit} bytes")
        self.path = path
        self.limit = limit


class OutputFilesError(Isol8Error):
    """The run's output files could not be returned whole (one over a cap, named): never cut short.

    `result` is the run's result (output, exit code) without them, when the run had ended."""

    result: object = None


class ImageMissing(RunFailed):
    """The image to run does not exist (and is not a base image isol8 can build): nothing ran."""


class RequestError(Isol8Error):
    """An HTTP request the server refuses: its status (400 invalid, 403 not allowed, 404, 409, 413, 429...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RemoteError(Isol8Error):
    """An isol8 server refused or failed a request (its HTTP status and message), or could not be reached."""

    exit_status = ExitStatus.ENGINE_FAILURE

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LimitRefused(UsageError):
    """A limit that is not valid (above=False), or above the ceiling it was held to (above=True)."""

    def __init__(self, key: str, message: str, *, above: bool, reason: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.above = above
        self.reason = reason or message


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a run (isol8.core.runner.signals_raise): the container is removed."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class MissingImage(Exception):
    """Internal to a run: the engine found no such image, so nothing ran and the run may build it and retry."""
