"""One execution: request -> locked-down `run` -> live, masked, bounded output -> an honest result."""

from __future__ import annotations

import _signal  # signal.py's enum wrappers cost every run ~3M instructions; the C module is enough
import os
import posixpath
import sys
import time
from collections.abc import Callable, Iterable, Iterator

from isol8 import labels as L
from isol8.core import outputs, payload
from isol8.core.request import RunRequest, RunResult, resolve_workdir
from isol8.core.sandbox import SANDBOX_DIR, ContainerSpec
from isol8.core.streams import ProgramOutput, Trailer
from isol8.errors import (
    EngineError,
    ImageMissing,
    ImageNotFound,
    Interrupted,
    MissingImage,
    OutputFilesError,
    PayloadTooLarge,
    RunFailed,
)
from isol8.log import get_logger
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms
from isol8.runtimes import Runtime
from isol8.status import ExitStatus

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

    from isol8.backends.base import Backend, Planned, Process

log = get_logger(__name__)

# After the deadline the container is killed; the in-container backstop fires this much later.
BACKSTOP_GRACE_S = 5
# The time limit counts from the program's start; creating and starting the container may take
# this long on top (a loaded machine, a cold engine) before the run counts as failed.
STARTUP_ALLOWANCE_S = 60.0


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
        self.files_error: OutputFilesError | None = None  # raised at the end; the result has no files
        self.name = container or L.container_name()
        runtime = request.runtime
        self.image = request.image or backend.local_image(runtime.image)
        code_name = _code_name(request)
        body = request.code if request.code is not None else (request.cmd or "").encode()
        self.nonce = payload.new_nonce()
        extra = {payload.SETUP_NAME: request.setup.encode()} if request.setup is not None else {}
        self.payload = payload.make_payload(request.files_dir, code_name, body, extra, request.packages)
        interpreter = (
            ["bash", f"{SANDBOX_DIR}/{code_name}"]
            if request.cmd is not None
            else runtime.command(f"{SANDBOX_DIR}/{code_name}")
        )
        if request.setup is not None:
            interpreter = [*payload.setup_first(f"{SANDBOX_DIR}/{payload.SETUP_NAME}"), *interpreter]
        self._check_fits(request)
        watchdog_s = -(-request.timeout_ms // 1000) + BACKSTOP_GRACE_S  # it starts once files are unpacked
        # the engine's backstop starts with the container: unpacking run-time installed packages
        # comes before the program, a second per 8 MiB of them
        self.backstop_s = watchdog_s + (len(request.packages) >> 23)
        self.command = [
            "-c",
            payload.WRAPPER,
            "isol8",
            resolve_workdir(request.workdir),
            str(watchdog_s),
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
            proc = self.backend.run(
                self._spec(),
                self.command,
                stdin=stdin,
                remove=not request.persist,
                backstop_s=self.backstop_s,
            )
        self.argv = proc.argv
        return proc

    def _spec(self) -> ContainerSpec:
        labels = {**L.run_labels(self.name), L.RUNTIME: self.request.runtime.name, **self.request.labels}
        return ContainerSpec(self.name, self.image, self.request.policy, labels)

    def plan(self) -> list[Planned]:
        """What iterating would run (the backend's commands; the payload goes on stdin), run now:
        nothing. The program, its environment and its files are in the payload, never in these."""
        if self.standby is not None:
            raise ValueError("a plan is of a new container's run")
        return self.backend.planned_run(
            self._spec(), self.command, remove=not self.request.persist, backstop_s=self.backstop_s
        )

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
        self.outputs = outputs.patterns(request.output_paths)
        tar_max = outputs.tar_max(request.output_limits) if self.outputs else 0
        files_max = -(-tar_max // 3) * 4 + 2  # its base64 and the newline after it
        out = ProgramOutput(self.nonce, request.secrets.values(), request.max_output, files_max if tar_max else 0)
        self.intact = timed_out = removed = False
        code = 0
        started = ended = time.monotonic()
        limit_s = request.timeout_ms / 1000

        def deadline() -> float:
            if out.trailer.started_at is None:
                return started + STARTUP_ALLOWANCE_S + limit_s
            return out.trailer.started_at + limit_s

        stdin = payload.stdin_stream(
            self.nonce,
            self.payload,
            self.program_env,
            request.stdin,
            reap=not request.keep_background,
            outputs=self.outputs,
            out_max=tar_max,
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
        if self.outputs and out.trailer.files_complete and self.intact:
            self.result = self._with_files(self.result, bytes(out.trailer.files or b""))

    def _with_files(self, result: RunResult, block: bytes) -> RunResult:
        """The result with its output files; OutputFilesError (carrying the result) when they cannot be had whole."""
        import binascii
        from base64 import b64decode

        try:
            tar = b64decode(b"".join(block.split()), validate=True)
            got = outputs.read_block(tar, self.outputs, self.request.output_limits)
        except binascii.Error:
            error = OutputFilesError("the output files could not be read back from the sandbox")
        except OutputFilesError as exc:
            error = exc
        else:
            return result._replace(files=got.files, missing_files=got.missing)
        error.result = result
        self.result, self.files_error = result, error
        raise error

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

    old = {sig: _signal.signal(sig, handler) for sig in (_signal.SIGINT, _signal.SIGTERM)}

    def restore() -> None:
        for sig, previous in old.items():
            _signal.signal(sig, previous)

    return restore


def stdin_chunks(stream: Any = None) -> Iterator[bytes]:
    stream = stream or sys.stdin.buffer
    while True:
        data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not data:
            return
        yield data


__all__ = ["Chunk", "Execution", "RunRequest", "RunResult", "run", "signals_raise", "stdin_chunks"]
