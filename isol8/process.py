"""The only module that starts processes: one-shot calls and streamed calls, both with deadlines."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from isol8.errors import EngineNotFound, EngineTimeout
from isol8.log import get_logger
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

log = get_logger(__name__)

CHUNK = 65536


class Completed(NamedTuple):
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Shown:
    """argv for the debug log, joined only if a record is made (not on every run): a multi-line
    argument (isol8's wrapper script) is shortened to its first line."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = argv

    def __str__(self) -> str:
        import shlex

        return shlex.join(a if "\n" not in a.strip() else a.strip().split("\n", 1)[0] + " ..." for a in self.argv)


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _not_found(argv: Sequence[str]) -> EngineNotFound:
    return EngineNotFound(
        argv,
        None,
        message=f"{argv[0]}: command not found",
        hint="install docker or podman (scripts/ensure-engines does it on Debian), or pick one with --engine",
    )


def _run(
    argv: Sequence[str], timeout: float, input: bytes | None, env: Mapping[str, str] | None, cwd: str | None = None
) -> tuple[int, bytes, bytes]:
    log.debug("+ %s", Shown(argv))
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            stdin=None if input is not None else subprocess.DEVNULL,
            cwd=cwd,
        )
    except FileNotFoundError:
        raise _not_found(argv) from None
    except subprocess.TimeoutExpired as exc:
        raise EngineTimeout(
            argv,
            None,
            decode(exc.stdout or b""),
            decode(exc.stderr or b""),
            message=f"{argv[0]} did not answer within {timeout:g}s",
        ) from None
    return proc.returncode, proc.stdout, proc.stderr


def run_process(
    argv: Sequence[str],
    *,
    timeout: float,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Completed:
    """Run argv to completion; raise EngineNotFound or EngineTimeout, never return a Popen."""
    code, out, err = _run(argv, timeout, input, env, cwd)
    return Completed(tuple(argv), code, decode(out), decode(err))


def run_process_bytes(argv: Sequence[str], *, timeout: float, cwd: str | None = None) -> tuple[int, bytes, str]:
    """(returncode, raw stdout, decoded stderr): for output that is data, not text (a file's bytes)."""
    code, out, err = _run(argv, timeout, None, None, cwd)
    return code, out, decode(err)


class Watcher:
    """A process in its own session that reads one line from a pipe held by this process (see the engine reaper)."""

    def __init__(self, argv: Sequence[str]) -> None:
        log.debug("+ %s (watcher)", Shown(argv))
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C or a kill of isol8's process group spares it
        )

    def finish(self, clean: bool) -> None:
        """Tell it "done" (clean) or just close the pipe, as this process's death would."""
        pipe = self._proc.stdin
        assert pipe is not None
        try:
            if clean:
                pipe.write(b"done\n")
            pipe.close()
        except OSError:
            pass


class StreamingProcess:
    """A started process whose stdout and stderr are read as they come.

    Used as a context manager: leaving the block kills the process if it still runs,
    so nothing outlives its caller.
    """

    network_log = None  # the backend seam's Process has it; only a filtered run's has a log

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdin: Iterable[bytes] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        log.debug("+ %s", Shown(argv))
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=None if env is None else dict(env),
                cwd=cwd,
                # a terminal's Ctrl-C must reach isol8 only: isol8 decides how the container ends
                start_new_session=True,
            )
        except FileNotFoundError:
            raise _not_found(argv) from None
        self._writer: threading.Thread | None = None
        if stdin is not None:
            self._writer = threading.Thread(target=self._feed, args=(stdin,), daemon=True)
            self._writer.start()

    def _feed(self, chunks: Iterable[bytes]) -> None:
        pipe = self._proc.stdin
        assert pipe is not None
        try:
            for chunk in chunks:
                pipe.write(chunk)
                pipe.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    @property
    def pid(self) -> int:
        return self._proc.pid

    def chunks(self, deadline: float | Callable[[], float] | None = None) -> Iterator[tuple[str, bytes]]:
        """Yield ("stdout"|"stderr", data) until both pipes close or the monotonic deadline passes.

        deadline may be a function, read again after every chunk, so the caller can move it.
        """
        due = deadline if callable(deadline) else (lambda: deadline)
        streams = {"stdout": self._proc.stdout, "stderr": self._proc.stderr}
        with selectors.DefaultSelector() as sel:
            for name, pipe in streams.items():
                assert pipe is not None
                os.set_blocking(pipe.fileno(), False)
                sel.register(pipe.fileno(), selectors.EVENT_READ, name)
            while sel.get_map():
                limit = due()
                wait = None if limit is None else limit - time.monotonic()
                if wait is not None and wait <= 0:
                    return
                for key, _ in sel.select(wait):
                    try:
                        data = os.read(key.fd, CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    yield key.data, data

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, or None if the process still runs after timeout seconds."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def poll(self) -> int | None:
        return self._proc.poll()

    def signal(self, sig: int) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def __enter__(self) -> StreamingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self.signal(signal.SIGKILL)
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        if self._writer is not None:
            self._writer.join(timeout=1)
