"""isol8.process and isol8.spawning with real processes: every way a streamed call starts behaves alike: posix_spawn,
posix_spawn in a folder of its own (this process's working directory changed for the spawn alone,
when it runs a single thread), and subprocess.Popen (a folder of its own while other threads run)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isol8 import process, spawning
from isol8.errors import EngineNotFound
from isol8.process import StreamingProcess, Watcher

SPAWN = process.spawn  # tests/unit/conftest.py sends every other unit test's processes through Popen


@pytest.fixture(autouse=True)
def real_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "spawn", SPAWN)


EXPECTED: list[type] = []  # how the `cwd` fixture's way starts a child: spawning._Spawned or _Popened


def wait_alone() -> None:
    """Until this process runs one thread (spawn() starts in a folder by posix_spawn only then): a
    feeder thread of an earlier test may still be finishing, for longer on a loaded machine."""
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(params=["posix_spawn", "posix_spawn in a folder", "popen"])
def cwd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None: posix_spawn; a folder: posix_spawn there while this process runs one thread, else
    subprocess.Popen (here with a thread of the test's waiting all along)."""
    EXPECTED[:] = [spawning._Popened if request.param == "popen" else spawning._Spawned]
    if request.param != "popen":
        wait_alone()
        yield None if request.param == "posix_spawn" else str(tmp_path)
        return
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        yield str(tmp_path)
    finally:
        done.set()
        other.join()


def started(argv: list[str], cwd: str | None, **kwargs: object) -> StreamingProcess:
    here = os.getcwd()
    proc = StreamingProcess(argv, cwd=cwd, **kwargs)  # type: ignore[arg-type]
    assert isinstance(proc._proc, EXPECTED[0])
    assert os.getcwd() == here
    return proc


def outputs(proc: StreamingProcess) -> dict[str, bytes]:
    got = {"stdout": b"", "stderr": b""}
    for name, data in proc.chunks(time.monotonic() + 30):
        got[name] += data
    return got


def test_streams_and_exit_status(cwd: str | None) -> None:
    with started(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd) as proc:
        assert outputs(proc) == {"stdout": b"out\n", "stderr": b"err\n"}
        assert proc.wait() == 3


def test_stdin_is_fed_in_chunks_then_closed(cwd: str | None) -> None:
    chunks = [b"a" * 100_000, b"b", b"", b"c\n"]  # more than a pipe holds
    with started(["sh", "-c", "cat; echo end"], cwd, stdin=iter(chunks)) as proc:
        assert outputs(proc)["stdout"] == b"".join(chunks) + b"end\n"
        assert proc.wait() == 0


def test_without_stdin_the_child_reads_dev_null(cwd: str | None) -> None:
    with started(["sh", "-c", "cat; echo $?"], cwd) as proc:
        assert outputs(proc)["stdout"] == b"0\n"


def test_a_signal_death_is_a_negative_status(cwd: str | None) -> None:
    with started(["sh", "-c", "kill -TERM $$"], cwd) as proc:
        outputs(proc)
        assert proc.wait() == -15


def test_the_child_has_a_session_of_its_own_and_its_standard_streams_alone(cwd: str | None) -> None:
    """Not even a descriptor that whoever started isol8 left inheritable."""
    probe = "import os; print(os.getsid(0) == os.getpid(), sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"
    read, write = os.pipe()
    os.set_inheritable(write, True)
    try:
        with started([sys.executable, "-c", probe], cwd, stdin=iter([b""])) as proc:
            out = outputs(proc)
    finally:
        os.close(read)
        os.close(write)
    assert out["stdout"] == b"True [0, 1, 2, 3]\n", out  # 3: the listing's own


def test_the_signals_python_ignores_are_the_childs_defaults(cwd: str | None) -> None:
    with started(["sh", "-c", "grep SigIgn /proc/self/status"], cwd) as proc:
        ignored = int(outputs(proc)["stdout"].split()[1], 16)
    assert ignored & (1 << (13 - 1) | 1 << (25 - 1)) == 0  # SIGPIPE and SIGXFSZ


def test_the_environment_given_is_the_whole_environment(cwd: str | None) -> None:
    with started(["/bin/sh", "-c", 'echo "$ONLY:${HOME:-none}"'], cwd, env={"ONLY": "1"}) as proc:
        assert outputs(proc)["stdout"] == b"1:none\n"


def test_a_missing_program_is_engine_not_found_and_leaks_no_descriptor(cwd: str | None) -> None:
    before, here = set(os.listdir("/proc/self/fd")), os.getcwd()
    with pytest.raises(EngineNotFound, match="no-such-engine-x: command not found"):
        StreamingProcess(["no-such-engine-x", "run"], stdin=iter([b"x"]), cwd=cwd)
    assert set(os.listdir("/proc/self/fd")) <= before
    assert os.getcwd() == here


def test_the_child_starts_in_its_folder_and_this_process_stays_in_its_own(cwd: str | None) -> None:
    with started(["sh", "-c", "pwd"], cwd) as proc:
        assert outputs(proc)["stdout"].decode().strip() == (cwd or os.getcwd())


def test_the_way_back_is_found_even_when_this_processs_folder_was_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, folder = tmp_path / "gone", tmp_path / "client"
    gone.mkdir()
    folder.mkdir()
    monkeypatch.chdir(gone)
    inode = os.stat(".").st_ino
    gone.rmdir()
    wait_alone()
    with StreamingProcess(["pwd"], cwd=str(folder)) as proc:
        assert isinstance(proc._proc, spawning._Spawned)
        assert outputs(proc)["stdout"] == f"{folder}\n".encode()
    assert os.stat(".").st_ino == inode


def test_a_child_is_killed_when_the_way_back_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, pids = os.getcwd(), []
    real_spawn = os.posix_spawnp
    monkeypatch.setattr(os, "posix_spawnp", lambda *a, **k: pids.append(real_spawn(*a, **k)) or pids[-1])

    def refused(fd: int) -> None:
        raise PermissionError(13, "no search permission")

    monkeypatch.setattr(os, "fchdir", refused)
    wait_alone()
    try:
        with pytest.raises(PermissionError):
            StreamingProcess(["sleep", "30"], cwd=str(tmp_path))
    finally:
        os.chdir(here)
    (pid,) = pids
    with pytest.raises(ChildProcessError):  # killed and reaped already
        os.waitpid(pid, 0)


def test_wait_with_a_timeout_then_a_kill_and_a_wait_from_two_threads(cwd: str | None) -> None:
    with started(["sleep", "30"], cwd) as proc:
        assert proc.wait(0.05) is None and proc.poll() is None
        statuses: list[int | None] = []
        waiter = threading.Thread(target=lambda: statuses.append(proc.wait()))
        waiter.start()
        time.sleep(0.05)
        proc.kill()
        waiter.join(10)
        assert statuses == [-9] and proc.wait(1) == -9 and proc.poll() == -9


def test_leaving_the_block_kills_what_still_runs_and_closes_its_pipes(cwd: str | None) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with started(["sleep", "30"], cwd, stdin=iter([b"x"])) as proc:
        pid = proc.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    assert set(os.listdir("/proc/self/fd")) <= before


def test_a_watcher_reads_done_or_sees_its_pipe_closed(tmp_path: Path) -> None:
    for clean, expected in ((True, "done"), (False, "")):
        said = tmp_path / f"said-{clean}"
        script = 'IFS= read -r word; s=$?; printf %s "$word" > "$1"; exit "$s"'
        watcher = Watcher(["/bin/sh", "-c", script, "w", str(said)])
        assert isinstance(watcher._child, spawning._Spawned)
        watcher.finish(clean)
        assert watcher._child.wait(10) == (0 if clean else 1)
        assert said.read_text() == expected


def test_leaving_twice_closes_nothing_that_reused_its_numbers(cwd: str | None) -> None:
    """A kill then a stop (backends/attached.py) leave the block twice: the second time must not
    close what another run has opened since under the same descriptor numbers."""
    proc = started(["true"], cwd, stdin=iter([b"x"]))
    proc.__exit__(None, None, None)
    read, write = os.pipe()
    try:
        proc.__exit__(None, None, None)
        assert list(proc.chunks()) == []
        os.write(write, b"still open")
        assert os.read(read, 64) == b"still open"
    finally:
        os.close(read)
        os.close(write)


def test_a_missing_program_closes_each_descriptor_once(cwd: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []
    real_close = os.close
    monkeypatch.setattr(process.os, "close", lambda fd: (closed.append(fd), real_close(fd))[1])
    with pytest.raises(EngineNotFound):
        StreamingProcess(["no-such-engine-x"], stdin=iter([b"x"]), cwd=cwd)
    assert len(closed) == len(set(closed)) >= 6, closed  # three pipes, two ends each (and Popen's own)


def test_leaving_with_an_exception_asks_with_sigterm_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a Ctrl-C: a process that stops on SIGTERM does so in its own way (podman's client then
    leaves no half-made container), one that ignores it is killed after the grace."""
    monkeypatch.setattr(process, "STOP_GRACE_S", 0.5)
    script = "trap 'echo asked; exit 0' TERM; echo up; while :; do sleep 0.05; done"
    with pytest.raises(KeyError):
        with StreamingProcess(["sh", "-c", script]) as proc:
            chunks = proc.chunks(time.monotonic() + 10)
            assert next(chunks) == ("stdout", b"up\n")
            raise KeyError("interrupted")
    assert proc.wait(0) == 0
    started = time.monotonic()
    with pytest.raises(KeyError):
        with StreamingProcess(["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"]) as proc:
            assert next(proc.chunks(time.monotonic() + 10)) == ("stdout", b"up\n")
            raise KeyError("interrupted")
    assert proc.wait(0) == -9 and 0.5 <= time.monotonic() - started < 5


def test_a_one_shot_call_cut_short_asks_with_sigterm_first(tmp_path: Path) -> None:
    """A one-shot call (podman's `run -d` of a session, a probe) cut short by a raising handler: its
    process gets SIGTERM first, and stops in its own way."""
    import signal as signals

    asked = tmp_path / "asked"

    def cut_short(signum: int, frame: object) -> None:
        raise KeyError("interrupted")

    old = signals.signal(signals.SIGALRM, cut_short)
    signals.setitimer(signals.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyError):
            process.run_process(
                ["sh", "-c", f"trap 'touch {asked}; exit 0' TERM; while :; do sleep 0.05; done"], timeout=20
            )
    finally:
        signals.setitimer(signals.ITIMER_REAL, 0)
        signals.signal(signals.SIGALRM, old)
    assert asked.exists()
