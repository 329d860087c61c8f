"""The only module that starts processes (with isol8.spawning, how a child starts): one-shot calls
and streamed calls, both with deadlines.

A streamed call (the engine client that runs a sandbox) and the reaper's watcher start with
isol8.spawning.spawn (os.posix_spawn), are read with select.poll and fed by a _thread: on the way
to a run's engine, subprocess (with threading, selectors and locale) would cost every `isol8 run`
about 4 ms. One-shot calls go through subprocess.Popen, imported when used. Each start holds
back SIGINT and SIGTERM until the child is known (isol8.spawning.started).
"""

from __future__ import annotations

import _signal  # signal.py's enum wrappers cost every run ~3M instructions; the C module is enough
import _thread
import os
import select
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from isol8.errors import EngineNotFound, EngineTimeout
from isol8.log import get_logger
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms
from isol8.spawning import Child, end, spawn, started

log = get_logger(__name__)

CHUNK = 65536
# stopped early (a Ctrl-C, a timeout), a process gets SIGTERM and this long before SIGKILL: podman's
# client, killed while it creates its container, left it half made (conmon and `runc init` running,
# unknown to `podman rm`); on SIGTERM it stops where its records agree
STOP_GRACE_S = 2.0


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
    import subprocess

    log.debug("+ %s", Shown(argv))

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            cwd=cwd,
        )

    def stop(proc: subprocess.Popen[bytes]) -> None:
        ask_then_kill(proc)
        proc.__exit__(None, None, None)  # closes the pipes, reaps

    def ask_then_kill(proc: subprocess.Popen[bytes]) -> None:  # see STOP_GRACE_S
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()

    # subprocess.run, but a SIGINT or SIGTERM just after the start kills the child (see started()),
    # and from there on a try, not a with: Python could run a handler on entering its __enter__
    try:
        proc = started(start, stop)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            ask_then_kill(proc)
            raise
        finally:
            proc.__exit__(None, None, None)
    except FileNotFoundError:  # from the start (a test's fake Popen has it from communicate)
        raise _not_found(argv) from None
    except subprocess.TimeoutExpired as exc:  # with what was read so far
        raise EngineTimeout(
            argv,
            None,
            decode(exc.stdout or b""),
            decode(exc.stderr or b""),
            message=f"{argv[0]} did not answer within {timeout:g}s",
        ) from None
    return proc.returncode, out, err


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Watcher:
    """A process in its own session that reads one line from a pipe held by this process (see the engine reaper)."""

    def __init__(self, argv: Sequence[str]) -> None:
        log.debug("+ %s (watcher)", Shown(argv))
        read, self._pipe = os.pipe()
        try:
            try:
                self._child = spawn(argv, (read, None, None), None, None)
            finally:
                _close(read)
        except BaseException:
            _close(self._pipe)
            raise

    def finish(self, clean: bool) -> None:
        """Tell it "done" (clean) or just close the pipe, as this process's death would."""
        if self._pipe < 0:
            return
        try:
            if clean:
                _write_all(self._pipe, b"done\n")
        except OSError:
            pass
        _close(self._pipe)
        self._pipe = -1


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
        self._out = self._err = -1
        self._fed = _thread.allocate_lock()  # held while the feeder runs
        self._feeding: list[int] = []  # the writing end of stdin's pipe, until the feeder takes it
        self._proc = started(lambda: self._start(stdin, env, cwd), self._stop)

    def _start(self, stdin: Iterable[bytes] | None, env: Mapping[str, str] | None, cwd: str | None) -> Child:
        fds: list[int] = []
        try:
            for _ in range(2 if stdin is None else 3):
                fds += os.pipe()
        except BaseException:
            _close(*fds)
            raise
        out, err, feed = fds[0:2], fds[2:4], fds[4:6]
        theirs, ours = (feed[0] if feed else None, out[1], err[1]), (out[0], err[0])
        self._feeding[:] = feed[1:]
        try:
            try:
                proc = spawn(self.argv, theirs, env, cwd)
            finally:
                _close(*(fd for fd in theirs if fd is not None))
        except BaseException as exc:
            _close(*ours)
            self._give_up_feeding()
            if isinstance(exc, FileNotFoundError):
                raise _not_found(self.argv) from None
            raise
        self._out, self._err = ours
        if stdin is not None:
            self._fed.acquire()
            try:
                _thread.start_new_thread(self._feed, (stdin,))
            except BaseException:  # without its feeder, the process would wait for its stdin
                self._stop(proc)
                raise
        return proc

    def _stop(self, proc: Child) -> None:
        """Kill and reap proc, and close this end of its pipes: a signal's handler raised before the caller had this."""
        end(proc)
        ours, self._out, self._err = (self._out, self._err), -1, -1
        _close(*ours)
        self._give_up_feeding()

    def _give_up_feeding(self) -> None:
        try:
            fd = self._feeding.pop()  # unless the feeder took it: one of the two closes it, once
        except IndexError:
            return
        _close(fd)

    def _feed(self, chunks: Iterable[bytes]) -> None:
        try:
            pipe = self._feeding.pop()
        except IndexError:  # given up before this thread ran
            self._fed.release()
            return
        try:
            for chunk in chunks:
                _write_all(pipe, chunk)
        except (ValueError, OSError):  # the process is gone, or has closed its stdin
            pass
        finally:
            _close(pipe)
            self._fed.release()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def chunks(self, deadline: float | Callable[[], float] | None = None) -> Iterator[tuple[str, bytes]]:
        """Yield ("stdout"|"stderr", data) until both pipes close or the monotonic deadline passes.

        deadline may be a function, read again after every chunk, so the caller can move it.
        """
        if self._out < 0:  # left already
            return
        due = deadline if callable(deadline) else (lambda: deadline)
        names = {self._out: "stdout", self._err: "stderr"}
        poller = select.poll()
        for fd in names:
            poller.register(fd, select.POLLIN)
        open_fds = set(names)
        while open_fds:
            limit = due()
            wait = None if limit is None else limit - time.monotonic()
            if wait is not None and wait <= 0:
                return
            for fd, event in poller.poll(None if wait is None else max(1, int(wait * 1000) + 1)):
                data = b"" if event & select.POLLNVAL else os.read(fd, CHUNK)  # POLLNVAL: closed by __exit__
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                yield names[fd], data

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, or None if the process still runs after timeout seconds."""
        return self._proc.wait(timeout)

    def poll(self) -> int | None:
        return self._proc.poll()

    def signal(self, sig: int) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.signal(_signal.SIGKILL)

    def __enter__(self) -> StreamingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None and exc and exc[0] is not None:  # see STOP_GRACE_S
            self.signal(_signal.SIGTERM)
            self._proc.wait(STOP_GRACE_S)
        if self._proc.poll() is None:
            self.signal(_signal.SIGKILL)
        self._proc.wait(None)
        if self._out >= 0:  # once: leaving twice (a kill, then a stop) must not close reused numbers
            ours, self._out, self._err = (self._out, self._err), -1, -1
            _close(*ours)
        if self._fed.acquire(timeout=1):
            self._fed.release()
