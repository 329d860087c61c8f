"""How a child process starts, for isol8.process: in a session of its own, with the signals Python
ignores back at their defaults and isol8's inheritable descriptors closed, as subprocess gives it.

spawn() uses os.posix_spawn, which costs no import of subprocess (with threading, selectors and
locale: about 4 ms of every `isol8 run`). A child that needs a working directory of its own
(podman's client) gets it from this process's, changed for the spawn alone, when this process runs
a single thread (the CLI); otherwise (a server) it starts through subprocess.Popen (popen()).

Every start goes through started(): a SIGINT or SIGTERM that comes meanwhile is handled once the
child is known, and a handler that raises then has the child killed, not left running unknown.
"""

from __future__ import annotations

import _signal  # signal.py's enum wrappers cost every run ~3M instructions; the C module is enough
import _thread
import os
import time
from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    import subprocess
    from types import FrameType
    from typing import TypeVar

    T = TypeVar("T")

# Python ignores these; a child gets them back at their defaults, as subprocess gives them
_RESTORED_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ)
# the signals whose handlers may raise (Python's Ctrl-C, isol8 run's Interrupted): held back while a child starts
_HELD = (_signal.SIGINT, _signal.SIGTERM)


class _Held:
    """While in it, SIGINT and SIGTERM are noted instead of handled. Python runs a handler as soon
    as the call that was under way returns: one that raises right after a child's start would lose
    the child's pid, and the child (an engine client about to create a container) would go on
    unknown. Only a handler set from Python can raise: an ignored signal stays ignored (and so in
    the child), a default one ends this process (the watcher then sweeps). Handlers run in the main
    thread alone, so elsewhere nothing needs holding."""

    def __init__(self) -> None:
        self.noted: list[int] = []
        self._handlers: dict[int, Callable[[int, FrameType | None], object]] = {}

    def __enter__(self) -> _Held:
        try:
            for sig in _HELD:
                handler = _signal.getsignal(sig)
                if callable(handler):
                    _signal.signal(sig, self._note)
                    self._handlers[sig] = handler
        except ValueError:  # not the main thread
            pass
        except BaseException:  # a handler ran first (_signal.signal runs what is pending), and raised
            self.__exit__()
            raise
        return self

    def _note(self, signum: int, frame: object) -> None:
        self.noted.append(signum)

    def __exit__(self, *exc: object) -> None:
        raised: BaseException | None = None
        for sig, handler in self._handlers.items():
            while True:  # every handler goes back, even when one that went back already raises first
                try:
                    _signal.signal(sig, handler)
                    break
                except ValueError:  # not the main thread: cannot be, as it was swapped here
                    break
                except BaseException as exc:
                    raised = raised or exc
        if raised is not None:
            raise raised


def started(start: Callable[[], T], stop: Callable[[T], None]) -> T:
    """start() (which starts a child and returns what knows it), with SIGINT and SIGTERM held back
    meanwhile; one that came is then handled, and if its handler raises, stop(child) is called
    (it kills and reaps) before the exception goes on. What is left: a signal in the few bytecodes
    between this return and the caller's keeping of the child (microseconds, against the
    milliseconds of a start)."""
    held, child = _Held(), []
    try:
        with held:
            child.append(start())
        for signum in dict.fromkeys(held.noted):
            _signal.raise_signal(signum)  # handled now, as if it had come just after the start
    except BaseException:
        if child:
            stop(child[0])
        raise
    return child[0]


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
    when it is nowhere there. A SIGINT or SIGTERM meanwhile is handled once the child is known
    (see started()): one whose handler raises kills it."""
    return started(lambda: _spawn(argv, streams, env, cwd), end)


def end(child: Child) -> None:
    """Kill child (its process group: it leads one) and reap it."""
    for kill in (os.killpg, os.kill):
        try:
            kill(child.pid, _signal.SIGKILL)
            break
        except ProcessLookupError:  # no group: the process alone, unless it is gone already
            pass
    child.wait(None)


def _spawn(argv: Sequence[str], streams: Streams, env: Mapping[str, str] | None, cwd: str | None) -> Child:
    inherited = _inheritable()
    if inherited is None or any(fd is not None and fd < 3 for fd in streams):
        return popen(argv, streams, env, cwd)  # a descriptor below 3 would stay close-on-exec in the child
    here = None if cwd is None else _alone_here()
    if cwd is not None and here is None:
        return popen(argv, streams, env, cwd)  # another thread could resolve a path meanwhile
    actions: list[tuple[object, ...]] = [
        (os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_RDWR, 0) if fd is None else (os.POSIX_SPAWN_DUP2, fd, target)
        for target, fd in enumerate(streams)
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited]

    def start() -> int:
        return os.posix_spawnp(
            argv[0],
            list(argv),
            os.environ if env is None else dict(env),
            file_actions=actions,
            setsid=True,
            setsigdef=_RESTORED_SIGNALS,
        )

    try:
        pid = start() if cwd is None or here is None else _started_in(cwd, here, start)
    except NotImplementedError:  # a C library without POSIX_SPAWN_SETSID
        return popen(argv, streams, env, cwd)
    return _Spawned(pid)


def _started_in(cwd: str, here: int, start: Callable[[], int]) -> int:
    """start() with this process's working directory changed to cwd, then back to here (its own,
    opened: found again even if renamed meanwhile). As with Popen's cwd, the child starts in cwd,
    and a relative program or PATH entry is looked for from there. A child that started when the
    way back failed is killed."""
    try:
        try:
            os.chdir(cwd)
            pid = start()
        except BaseException:
            os.fchdir(here)
            raise
        try:
            os.fchdir(here)
        except BaseException:
            end(_Spawned(pid))
            raise
        return pid
    finally:
        os.close(here)


def _alone_here() -> int | None:
    """This process's working directory, opened, when the process runs one thread and none other
    could resolve a relative path while spawn() changes it (the kernel's count: /proc/self/task);
    None when more run, or when either cannot be known or opened (then subprocess is used)."""
    try:
        if len(os.listdir("/proc/self/task")) != 1:
            return None
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


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
