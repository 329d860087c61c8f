"""A SIGINT or SIGTERM whose handler raises (isol8 run's Interrupted, Python's KeyboardInterrupt)
can come just as a child starts: Python runs the handler as soon as the starting call returns,
before the pid is kept. Such a child (an engine client about to create a container) must never go
on unknown: the signal is held back until the child is known, then handled, and the child is
killed and reaped. Each way of starting is tried with the signal sent from inside the start."""

from __future__ import annotations

import _signal
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from isol8 import process, spawning
from isol8.process import StreamingProcess, run_process

SPAWN = process.spawn  # tests/unit/conftest.py sends every other unit test's processes through Popen


class Raised(Exception):
    pass


@pytest.fixture(autouse=True)
def real_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "spawn", SPAWN)


@pytest.fixture
def handled() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise Raised, as isol8 run's handler raises Interrupted; the signals handled."""
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:
        seen.append(signum)
        raise Raised(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def signalled(real: Callable[..., int], pids: list[int], sig: int = signal.SIGTERM) -> Callable[..., int]:
    """real (a call that starts a child and returns its pid), then sig to this process: its handler
    runs as soon as the kill returns, exactly as when the signal comes while the start is under way."""

    def start(*args: Any, **kwargs: Any) -> int:
        pid = real(*args, **kwargs)
        pids.append(pid)
        os.kill(os.getpid(), sig)
        return pid

    return start


def assert_killed_and_reaped(pids: list[int]) -> None:
    (pid,) = pids
    with pytest.raises(ChildProcessError):  # reaped already: nobody is left to do it
        os.waitpid(pid, os.WNOHANG)


def descriptors() -> set[str]:
    """This process's open descriptors (not the listing's own, closed by now)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        found.add(name)
    return found


def test_posix_spawn_a_streamed_call(handled: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    pids: list[int] = []
    monkeypatch.setattr(os, "posix_spawnp", signalled(os.posix_spawnp, pids))
    before = descriptors()
    with pytest.raises(Raised):
        StreamingProcess(["sleep", "30"])
    assert handled == [signal.SIGTERM]
    assert_killed_and_reaped(pids)
    assert descriptors() == before


def test_posix_spawn_in_a_folder_with_a_feeder(
    handled: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pids: list[int] = []  # posix_spawn while this process runs one thread, else Popen: either way
    monkeypatch.setattr(os, "posix_spawnp", signalled(os.posix_spawnp, pids, signal.SIGINT))
    monkeypatch.setattr(subprocess, "_fork_exec", signalled(subprocess._fork_exec, pids, signal.SIGINT))  # type: ignore[attr-defined]
    here, before = os.getcwd(), descriptors()
    with pytest.raises(Raised):
        StreamingProcess(["sleep", "30"], stdin=iter([b"x" * 200_000]), cwd=str(tmp_path))
    assert os.getcwd() == here and handled == [signal.SIGINT]
    assert_killed_and_reaped(pids)
    deadline = time.monotonic() + 5
    while descriptors() != before and time.monotonic() < deadline:  # the feeder closes its own end
        time.sleep(0.01)
    assert descriptors() == before


def test_popen_a_streamed_call(handled: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    pids: list[int] = []
    monkeypatch.setattr(spawning, "_inheritable", lambda: None)  # no listing of descriptors: Popen
    monkeypatch.setattr(subprocess, "_fork_exec", signalled(subprocess._fork_exec, pids))  # type: ignore[attr-defined]
    with pytest.raises(Raised):
        StreamingProcess(["sleep", "30"])
    assert_killed_and_reaped(pids)


def test_a_one_shot_call(handled: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    pids: list[int] = []
    monkeypatch.setattr(subprocess, "_fork_exec", signalled(subprocess._fork_exec, pids))  # type: ignore[attr-defined]
    before = descriptors()
    with pytest.raises(Raised):
        run_process(["sleep", "30"], timeout=20)
    assert handled == [signal.SIGTERM]
    assert_killed_and_reaped(pids)
    assert descriptors() == before


def test_a_watcher(handled: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    pids: list[int] = []
    monkeypatch.setattr(os, "posix_spawnp", signalled(os.posix_spawnp, pids))
    with pytest.raises(Raised):
        process.Watcher(["sleep", "30"])
    assert_killed_and_reaped(pids)


def test_a_signal_held_back_is_handled_once_and_the_handlers_are_put_back(
    handled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    pids: list[int] = []

    def twice(*args: Any, **kwargs: Any) -> int:
        pid = os.posix_spawnp(*args, **kwargs)
        pids.append(pid)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGTERM)
        return pid

    monkeypatch.setattr(
        spawning, "_spawn", lambda argv, *_: spawning._Spawned(twice(argv[0], argv, os.environ, setsid=True))
    )
    with pytest.raises(Raised):
        spawning.spawn(["sleep", "30"], (None, None, None), None, None)
    assert handled == [signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert_killed_and_reaped(pids)


def test_without_a_signal_nothing_changes(handled: list[int]) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StreamingProcess(["sh", "-c", "echo up"]) as proc:
        assert b"".join(data for _, data in proc.chunks(time.monotonic() + 10)) == b"up\n"
        assert proc.wait(10) == 0
    assert run_process(["true"], timeout=10).returncode == 0
    assert handled == [] and {sig: signal.getsignal(sig) for sig in handlers} == handlers


def test_outside_the_main_thread_no_handler_is_touched() -> None:
    got: list[object] = []

    def start() -> None:
        try:
            with StreamingProcess(["true"]) as proc:
                got.append(proc.wait(10))
        except BaseException as exc:  # noqa: BLE001 - reported below
            got.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(20)
    assert got == [0]


def raising_once_at(call: Callable[[int, Any], bool]) -> Callable[..., Any]:
    """_signal.signal (which isol8 calls, as signal.signal does), which first runs the handlers of
    signals that are pending: here one raises (once) on the call that `call` picks, before anything
    is changed."""
    real, fired = _signal.signal, []

    def swap(sig: int, handler: Any) -> Any:
        if not fired and call(sig, handler):
            fired.append(sig)
            raise Raised(sig)
        return real(sig, handler)

    return swap


@pytest.mark.parametrize("where", ["holding", "putting back"])
def test_a_handler_that_raises_while_the_handlers_are_swapped_leaves_them_all_put_back(
    handled: list[int], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    pids: list[int] = []
    monkeypatch.setattr(os, "posix_spawnp", signalled(os.posix_spawnp, pids, signal.SIGUSR2))  # ignored here

    def noting(handler: Any) -> bool:
        return getattr(handler, "__name__", "") == "_note"

    second = (lambda sig, h: noting(h)) if where == "holding" else (lambda sig, h: not noting(h))
    old_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        monkeypatch.setattr(_signal, "signal", raising_once_at(lambda sig, h: sig == signal.SIGTERM and second(sig, h)))
        with pytest.raises(Raised):
            StreamingProcess(["sleep", "30"])
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGUSR2, old_usr2)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    if where == "holding":
        assert pids == []  # nothing was started
    else:
        assert_killed_and_reaped(pids)


def test_a_handler_that_raises_just_after_the_feeder_starts_closes_its_pipe_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not every raising handler is held back (a test's timer, another library's): one that raises
    as the feeder thread starts has the child killed, and the feeder's pipe closed by the feeder
    alone, not also by this thread (a second close would hit whatever took the number meanwhile)."""
    real_start, go = process._thread.start_new_thread, threading.Event()

    def then_raise(*args: Any) -> int:
        real_start(*args)
        raise Raised(signal.SIGALRM)

    def chunks() -> Iterator[bytes]:
        go.wait(10)  # the feeder holds its pipe until the number could have been taken again
        yield b"x" * 200_000

    pipes: list[int] = []
    real_pipe = os.pipe
    monkeypatch.setattr(os, "pipe", lambda: pipes.extend(real_pipe()) or tuple(pipes[-2:]))
    monkeypatch.setattr(process._thread, "start_new_thread", then_raise)
    before = descriptors()
    with pytest.raises(Raised):
        StreamingProcess(["sleep", "30"], stdin=chunks())
    monkeypatch.undo()
    sentinels: set[str] = set()  # until every pipe's number is taken: the feeder's too, if it was closed here
    while {str(fd) for fd in pipes} - descriptors() and len(sentinels) < 100:
        sentinels.add(str(os.open(os.devnull, os.O_RDONLY)))
    go.set()
    try:
        deadline = time.monotonic() + 5
        while descriptors() != before | sentinels and time.monotonic() < deadline:
            time.sleep(0.01)
        assert descriptors() == before | sentinels
    finally:
        for fd in sentinels & descriptors():
            os.close(int(fd))


def test_an_ignored_sigint_stays_ignored_in_the_child() -> None:
    """isol8 started as a background job of a script has SIGINT ignored; so has its engine client."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StreamingProcess(["sh", "-c", "grep SigIgn /proc/self/status"]) as proc:
            status = b"".join(data for _, data in proc.chunks(time.monotonic() + 10))
            proc.wait(10)
    finally:
        signal.signal(signal.SIGINT, old)
    ignored = int(status.split()[1], 16)
    assert ignored & (1 << (signal.SIGINT - 1)), status
