"""One execution: request -> locked-down `run` -> live, masked, bounded output -> an honest result."""

from __future__ import annotations

import os
import posixpath
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

from isol8 import labels as L
from isol8 import units
from isol8.core import payload
from isol8.core.sandbox import SANDBOX_DIR, ContainerSpec, SandboxPolicy, valid_env_name
from isol8.core.streams import ProgramOutput, Trailer, Usage
from isol8.defaults import RUN
from isol8.errors import (
    EngineError,
    ImageMissing,
    ImageNotFound,
    Interrupted,
    MissingImage,
    PayloadTooLarge,
    RunFailed,
    UsageError,
)
from isol8.log import get_logger
from isol8.runtimes import Runtime
from isol8.status import ExitStatus

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

    from isol8.backends.base import Backend, Process
    from isol8.core.egress import Decision

log = get_logger(__name__)

# After the deadline the container is killed; the in-container backstop fires this much later.
BACKSTOP_GRACE_S = 5
# The time limit counts from the program's start; creating and starting the container may take
# this long on top (a loaded machine, a cold engine) before the run counts as failed.
STARTUP_ALLOWANCE_S = 60.0
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

    def check(self) -> RunRequest:
        """self, if it is a request isol8 can run; UsageError otherwise."""
        if (self.code is None) == (self.cmd is None):
            raise UsageError("give exactly one of code and cmd")
        resolve_workdir(self.workdir)
        if self.persist and self.policy.network == "filtered":
            raise UsageError("a filtered run's container cannot be kept: its network ends with the run")
        for name in (*self.env, *self.secrets):
            if not valid_env_name(name):
                raise UsageError(f"not a valid environment variable name: {name!r}")
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


class Chunk(NamedTuple):
    stream: str  # "stdout" or "stderr"
    data: bytes


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _code_name(request: RunRequest) -> str:
    if request.cmd is not None:
        return ".isol8-cmd.sh"
    ext = request.runtime.default_extension
    if request.filename:
        return payload.safe_code_name(posixpath.basename(request.filename.replace(os.sep, "/")), ext)
    return "main" + ext


class Execution:
    """Iterate to get the masked, bounded output chunks as they come; then read .result.

    Build one, iterate it once. The container is gone when iteration ends, whatever ended it
    (exit, timeout, an exception, or an Interrupted raised by a signal handler).
    """

    def __init__(
        self,
        backend: Backend,
        request: RunRequest,
        *,
        ensure_image: Callable[[Runtime], None] | None = None,
        container: str | None = None,
    ):
        """container: a started standby container (isol8.frontends.server.pool) to exec into instead of a new `run`."""
        self.backend = backend
        self.request = request.check()
        self.ensure_image = ensure_image
        self.result: RunResult | None = None
        self.intact = False  # the wrapper reported an exit that the engine's status confirms
        self.name = container or L.container_name()
        runtime = request.runtime
        self.image = request.image or backend.local_image(runtime.image)
        code_name = _code_name(request)
        body = request.code if request.code is not None else (request.cmd or "").encode()
        self.nonce = payload.new_nonce()
        extra = {payload.SETUP_NAME: request.setup.encode()} if request.setup is not None else {}
        self.payload = payload.make_payload(request.files_dir, code_name, body, extra)
        interpreter = (
            ["bash", f"{SANDBOX_DIR}/{code_name}"]
            if request.cmd is not None
            else runtime.command(f"{SANDBOX_DIR}/{code_name}")
        )
        if request.setup is not None:
            interpreter = [*payload.setup_first(f"{SANDBOX_DIR}/{payload.SETUP_NAME}"), *interpreter]
        self._check_fits(request)
        self.backstop_s = -(-request.timeout_ms // 1000) + BACKSTOP_GRACE_S
        self.command = [
            "-c",
            payload.WRAPPER,
            "isol8",
            resolve_workdir(request.workdir),
            str(self.backstop_s),
            *interpreter,
        ]
        self.program_env = {**request.env, **request.secrets}
        if request.policy.egress is not None:
            from isol8.core.egress import proxy_env

            self.program_env = {**proxy_env(), **self.program_env}
        self.standby = container
        self.argv: tuple[str, ...] = ()  # the backend's command line, once started
        self.process: Process | None = None

    def _start(self, stdin: Iterable[bytes]) -> Process:
        request = self.request
        if self.standby is not None:
            proc = self.backend.exec(self.standby, self.command, stdin=stdin)
        else:
            labels = {**L.run_labels(self.name), L.RUNTIME: request.runtime.name, **request.labels}
            spec = ContainerSpec(self.name, self.image, request.policy, labels)
            proc = self.backend.run(
                spec,
                self.command,
                stdin=stdin,
                remove=not request.persist,
                backstop_s=self.backstop_s,
            )
        self.argv = proc.argv
        return proc

    def _check_fits(self, request: RunRequest) -> None:
        """Files that cannot fit would fail before the program starts, as an OOM kill: say so instead."""
        need = self.payload.sandbox_bytes
        room = request.policy.sandbox_size
        memory = request.policy.memory
        if need > room:
            raise PayloadTooLarge(
                f"the files and code need {need} bytes in /sandbox, which holds {room} (--sandbox-size)"
            )
        if need >= memory:
            raise PayloadTooLarge(
                f"the files and code need {need} bytes of the {memory}-byte memory limit (/sandbox is memory): "
                "raise --memory"
            )

    def __iter__(self) -> Iterator[Chunk]:
        try:
            yield from self._attempt()
        except MissingImage:
            if self.ensure_image is None or self.request.image is not None:
                raise ImageMissing(self.argv, 125, message=f"image {self.image} not found") from None
            self.ensure_image(self.request.runtime)
            yield from self._attempt()

    def _attempt(self) -> Iterator[Chunk]:
        request = self.request
        out = ProgramOutput(self.nonce, request.secrets.values(), request.max_output)
        self.intact = timed_out = removed = False
        code = 0
        started = ended = time.monotonic()
        limit_s = request.timeout_ms / 1000

        def deadline() -> float:
            if out.trailer.started_at is None:
                return started + STARTUP_ALLOWANCE_S + limit_s
            return out.trailer.started_at + limit_s

        stdin = payload.stdin_stream(
            self.nonce, self.payload, self.program_env, request.stdin, reap=not request.keep_background
        )
        try:
            with self._start(stdin) as proc:
                self.process = proc
                yield from _chunks(out, proc.chunks(deadline))
                status = proc.wait(timeout=max(deadline() - time.monotonic(), 0.001))
                if status is None:
                    # the engine client first: while it still relays a flood, the engine's own kill
                    # waits on it (seen: 15 s); what it had relayed is read, then `rm -f` (below)
                    # ends the container
                    timed_out = True
                    proc.kill()
                    yield from _chunks(out, proc.chunks(time.monotonic() + 1))
                    status = proc.wait()
                    assert status is not None  # wait() without a timeout returns the status
                code = status
                ended = time.monotonic()  # before a filtered run's proxy is taken down
            yield from _chunks(out, ((stream, None) for stream in ("stdout", "stderr")))
            got = out.trailer.trailer
            # the exit line counts only when the engine's exit status agrees: the status is never
            # the program's to forge (a program that kills its wrapper gets 137 reported, and at
            # most a claim of its own OOM kill believed; a session is swept after it regardless)
            self.intact = not timed_out and got is not None and got.kind == "exit" and got.exit_code == code
            removed = self.intact and not request.persist
        finally:
            if not removed and not request.persist:
                removed = self._remove()
            elif self.standby is None:
                # gone with the engine's --rm, or kept (--persist): either way not the reaper's to remove
                # when this process exits (it would sweep every container of this process, kept ones too)
                self.backend.disown([self.name])
        self.result = self._result(out, code, timed_out, started, ended)

    def _result(self, out: ProgramOutput, code: int, timed_out: bool, started: float, ended: float) -> RunResult:
        got = out.trailer.trailer
        stdout_bytes, stderr_bytes = out.stdout_bytes(), out.stderr_bytes()
        if out.trailer.started_at is None:
            raise self._not_started(code, got, timed_out, decode(stderr_bytes))
        return RunResult(
            stdout=decode(stdout_bytes),
            stderr=decode(stderr_bytes),
            exit_code=int(ExitStatus.TIMEOUT if timed_out else code),
            timed_out=timed_out,
            oom_killed=self.intact and got is not None and got.oom_kills > 0,
            truncated=out.truncated,
            duration_ms=round((ended - (out.trailer.started_at or started)) * 1000),
            runtime=self.request.runtime.name,
            image=self.image,
            container=self.name,
            stdout_bytes=stdout_bytes,
            stderr_bytes=stderr_bytes,
            network_log=self.process.network_log if self.process is not None else None,
            usage=got.usage if self.intact and got is not None else None,
        )

    def _not_started(self, code: int, got: Trailer | None, timed_out: bool, stderr: str) -> Exception:
        """The program never ran: whatever happened is isol8's or the engine's failure, never its exit status."""
        if got is not None and got.kind == "setup":
            return RunFailed(self.argv, 125, "", stderr, message=got.message)
        if timed_out:
            return RunFailed(
                self.argv, None, "", stderr, message=f"the program did not start within {STARTUP_ALLOWANCE_S:g}s"
            )
        error = self.backend.classify(self.argv, code, "", stderr)
        if code in (125, 126, 127) and isinstance(error, ImageNotFound):
            return MissingImage()
        return RunFailed(
            self.argv,
            code,
            "",
            stderr,
            message=error.message,
            hint=error.hint or f"{self.backend.name} exited with {code} before the program started; it never ran",
        )

    def _remove(self) -> bool:
        try:
            self.backend.remove_containers([self.name])
        except EngineError as exc:
            log.warning("could not remove container %s: %s", self.name, exc)
            return False
        return True


def _chunks(out: ProgramOutput, pieces: Iterable[tuple[str, bytes | None]]) -> Iterator[Chunk]:
    """The output chunks to pass on for the engine's pieces; a piece of None: that stream has ended."""
    for stream, data in pieces:
        passed = out.flush(stream) if data is None else out.feed(stream, data)
        if passed:
            yield Chunk(stream, passed)


def run(backend: Backend, request: RunRequest, *, ensure_image: Callable[[Runtime], None] | None = None) -> RunResult:
    """Run to completion and return the buffered result."""
    execution = Execution(backend, request, ensure_image=ensure_image)
    for _ in execution:
        pass
    assert execution.result is not None
    return execution.result


def signals_raise() -> Callable[[], None]:
    """Make SIGINT and SIGTERM raise Interrupted in the main thread; returns a function restoring the old handlers."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def stdin_chunks(stream: Any = None) -> Iterator[bytes]:
    stream = stream or sys.stdin.buffer
    while True:
        data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not data:
            return
        yield data
