"""What a run is asked to do (RunRequest, checked before anything starts) and what it gave (RunResult)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from isol8 import units
from isol8.core import outputs
from isol8.core.outputs import OutputLimits
from isol8.core.payload import SHELL_FIXED
from isol8.core.sandbox import SANDBOX_DIR, SandboxPolicy, valid_env_name
from isol8.core.streams import Usage
from isol8.defaults import RUN
from isol8.errors import UsageError
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms
from isol8.runtimes import Runtime

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.core.egress import Decision

# The program's environment: what an exec takes (a string is below 128 KiB, Linux's
# MAX_ARG_STRLEN), and little enough that the wrapper reads it in a moment (it reads byte by byte).
ENV_ENTRY_MAX = 128 * 1024
ENV_BYTES_MAX = 256 * 1024
ENV_COUNT_MAX = 4096
NOTHING: Mapping[str, str] = MappingProxyType({})


class RunRequest(NamedTuple):
    """What to run and how. Exactly one of code and cmd: check() says what is wrong (an Execution checks)."""

    runtime: Runtime
    code: bytes | None = None
    cmd: str | None = None
    filename: str | None = None
    files_dir: str | os.PathLike[str] | None = None
    stdin: Iterable[bytes] = ()
    env: Mapping[str, str] = NOTHING
    secrets: Mapping[str, str] = NOTHING
    workdir: str = SANDBOX_DIR
    image: str | None = None
    timeout_ms: int = units.duration_ms(RUN["timeoutMs"])
    max_output: int = units.output_size(RUN["maxOutputSize"])
    policy: SandboxPolicy = SandboxPolicy()
    persist: bool = False
    labels: Mapping[str, str] = NOTHING  # extra container labels (e.g. the server's id)
    # in a kept container (a server session): leave the program's background processes running
    keep_background: bool = False
    # a bash script run in /sandbox before the program, as the sandbox user, within the time limit:
    # when it fails, the program does not run and the run's exit status is the script's
    setup: str | None = None
    # /sandbox paths or patterns (isol8.core.outputs) of the files to return once the program ends
    output_paths: tuple[str, ...] = ()
    output_limits: OutputLimits = OutputLimits()
    # run-time installed packages (isol8.core.installs.PackageTree.tar): unpacked into /sandbox first
    packages: bytes = b""

    def check(self) -> RunRequest:
        """self, if it is a request isol8 can run; UsageError otherwise."""
        if (self.code is None) == (self.cmd is None):
            raise UsageError("give exactly one of code and cmd")
        resolve_workdir(self.workdir)
        outputs.patterns(self.output_paths)
        if self.persist and self.policy.network == "filtered":
            raise UsageError("a filtered run's container cannot be kept: its network ends with the run")
        for name in (*self.env, *self.secrets):
            if not valid_env_name(name):
                raise UsageError(f"not a valid environment variable name: {name!r}")
        for name in self.secrets:
            if name in SHELL_FIXED:  # it would travel as a word of a command line
                raise UsageError(f"{name} cannot be a secret: the sandbox's shell keeps that name for itself")
        program_env = {**self.env, **self.secrets}
        for key, value in program_env.items():
            if "\0" in value:
                raise UsageError(f"the value of {key} contains a NUL byte")
            if len(key.encode()) + len(value.encode()) >= ENV_ENTRY_MAX:
                raise UsageError(f"the value of {key} is too long (a variable is less than {ENV_ENTRY_MAX} bytes)")
        size = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in program_env.items())
        if len(program_env) > ENV_COUNT_MAX or size > ENV_BYTES_MAX:
            raise UsageError(
                f"the environment is too large: {len(program_env)} variables, {size} bytes "
                f"(at most {ENV_COUNT_MAX} variables and {ENV_BYTES_MAX} bytes)"
            )
        if self.image is not None and (
            not self.image or self.image.startswith("-") or any(c.isspace() for c in self.image)
        ):
            raise UsageError(f"not an image reference: {self.image!r}")
        for field_name, limit, parse in (
            ("timeout_ms", self.timeout_ms, units.duration_ms),
            ("max_output", self.max_output, units.output_size),
        ):
            try:
                parse(limit)
            except units.InvalidLimit as exc:
                raise UsageError(f"{field_name}: {exc}") from None
        return self


def resolve_workdir(path: str) -> str:
    resolved = posixpath.normpath(posixpath.join(SANDBOX_DIR, path))
    if resolved != SANDBOX_DIR and not resolved.startswith(SANDBOX_DIR + "/"):
        raise UsageError(f"working directory must be inside {SANDBOX_DIR}: {path!r}")
    return resolved


class RunResult(NamedTuple):
    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    oom_killed: bool
    truncated: bool
    duration_ms: int
    runtime: str
    image: str
    container: str
    # the masked, limited bytes the live stream gave (stdout and stderr are these, decoded); stderr
    # also ends with the engine's messages held back when the program never started
    stdout_bytes: bytes
    stderr_bytes: bytes
    # a filtered run's proxy decisions (isol8.core.egress.Decision), in order; None for other networks
    network_log: tuple[Decision, ...] | None = None
    # what the run used (isol8.core.streams.Usage), as the sandbox's cgroup reported it at its end;
    # None when the wrapper could not report (a timeout, a program that killed it)
    usage: Usage | None = None
    # the output files asked for (/sandbox path -> content), None when none were asked for or the
    # run ended before the wrapper could send them (a timeout); and the patterns that matched none
    files: Mapping[str, bytes] | None = None
    missing_files: tuple[str, ...] = ()
