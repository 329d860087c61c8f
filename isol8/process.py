"""The only module that starts processes: one-shot calls and streamed calls, both with deadlines.

A streamed call (the engine client that runs a sandbox) and the reaper's watcher start with
os.posix_spawn, are read with select.poll and fed by a _thread: on the way to a run's engine,
subprocess (with threading, selectors and locale) would cost every `isol8 run` about 4 ms. A
client that needs its own working directory, which posix_spawn cannot give, starts through
subprocess.Popen, as do one-shot calls (subprocess.run): both import subprocess when used.
"""

from __future__ import annotations

import _thread
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from isol8.errors import EngineNotFound, EngineTimeout
from isol8.log import get_logger
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    import subprocess

log = get_logger(__name__)

CHUNK = 65536
# Python ignores these; a child gets them back at their defaults, as subprocess gives them
_RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


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


class _Spawned:
    """A process started by os.posix_spawn, reaped once, by whichever thread asks first."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = _thread.allocate_lock()

    def _reap(self, flags: int) -> None:  # with the lock held
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): its status is lost, as subprocess has it
            self.returncode = 0
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def poll(self) -> int | None:
        if self.returncode is None and self._lock.acquire(False):  # else another thread is waiting
            try:
                if self.returncode is None:
                    self._reap(os.WNOHANG)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None) -> int | None:
        if timeout is None:
            with self._lock:
                while self.returncode is None:
                    self._reap(0)
            return self.returncode
        end, pause = time.monotonic() + timeout, 0.0005
        while self.poll() is None:
            left = end - time.monotonic()
            if left <= 0:
                return None
            pause = min(pause * 2, left, 0.05)
            time.sleep(pause)
        return self.returncode


class _Popened:
    """A process started by subprocess.Popen, seen as a _Spawned."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self.pid = proc.pid

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None) -> int | None:
        import subprocess

        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


Child = _Spawned | _Popened
# the standard streams of a child: a file descriptor of this process's, or None for /dev/null
Streams = tuple[int | None, int | None, int | None]


def spawn(argv: Sequence[str], streams: Streams, env: Mapping[str, str] | None, cwd: str | None) -> Child:
    """argv, started in a session of its own (a terminal's Ctrl-C, or a kill of isol8's process
    group, reaches isol8 alone) with streams as its stdin, stdout and stderr. argv[0] is looked
    for on isol8's own PATH (env, when given, is the child's whole environment); FileNotFoundError
    when it is nowhere there."""
    inherited = _inheritable()
    if cwd is not None or inherited is None or any(fd is not None and fd < 3 for fd in streams):
        return popen(argv, streams, env, cwd)  # a descriptor below 3 would stay close-on-exec in the child
    actions: list[tuple[object, ...]] = [
        (os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_RDWR, 0) if fd is None else (os.POSIX_SPAWN_DUP2, fd, target)
        for target, fd in enumerate(streams)
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited]
    try:
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            os.environ if env is None else dict(env),
            file_actions=actions,
            setsid=True,
            setsigdef=_RESTORED_SIGNALS,
        )
    except NotImplementedError:  # a C library without POSIX_SPAWN_SETSID
        return popen(argv, streams, env, cwd)
    return _Spawned(pid)


def _inheritable() -> list[int] | None:
    """This process's inheritable descriptors past stderr (from whoever started isol8), which a
    child must not get (as subprocess's close_fds has it); None where no listing shows them."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
            break
        except OSError:
            continue
    else:
        return None
    found = []
    for fd in map(int, names):
        try:
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:  # the listing's own, closed by now
            pass
    return found


def popen(argv: Sequence[str], streams: Streams, env: Mapping[str, str] | None, cwd: str | None) -> Child:
    """spawn(), through subprocess.Popen: for a working directory of its own."""
    import subprocess

    stdin, stdout, stderr = (subprocess.DEVNULL if fd is None else fd for fd in streams)
    proc = subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=None if env is None else dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    return _Popened(proc)


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
            self._child = spawn(argv, (read, None, None), None, None)
        except BaseException:
            _close(self._pipe)
            raise
        finally:
            _close(read)

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
        out, err = os.pipe(), os.pipe()
        feed = os.pipe() if stdin is not None else None
        theirs = (feed[0] if feed else None, out[1], err[1])
        ours = (out[0], err[0], *(feed[1:] if feed else ()))
        try:
            self._proc = spawn(self.argv, theirs, env, cwd)
        except FileNotFoundError:
            _close(*ours)
            raise _not_found(argv) from None
        except BaseException:
            _close(*ours)
            raise
        finally:
            _close(*(fd for fd in theirs if fd is not None))
        self._out, self._err = out[0], err[0]
        self._fed = _thread.allocate_lock()  # held while the feeder runs
        if feed is not None and stdin is not None:
            self._fed.acquire()
            _thread.start_new_thread(self._feed, (feed[1], stdin))

    def _feed(self, pipe: int, chunks: Iterable[bytes]) -> None:
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
        self.signal(signal.SIGKILL)

    def __enter__(self) -> StreamingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self.signal(signal.SIGKILL)
        self._proc.wait(None)
        if self._out >= 0:  # once: leaving twice (a kill, then a stop) must not close reused numbers
            _close(self._out, self._err)
            self._out = self._err = -1
        if self._fed.acquire(timeout=1):
            self._fed.release()
