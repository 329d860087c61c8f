"""isol8 run's output on real engines: byte-exact streams, --out, truncation, terminal safety, secrets out of argv."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ISOL8

pytestmark = pytest.mark.usefixtures("no_leftovers")

# every byte value, invalid UTF-8 of each kind (lone continuation, 0xff, a lead without its
# continuation, a surrogate, a truncated 4-byte character), then 20000 bytes of a fixed pattern
DATA_SOURCE = (
    "bytes(range(256)) + b'\\x80\\xff\\xc3(\\xed\\xa0\\x80 \\xf0\\x9f\\x98' "
    "+ bytes((i * i + i // 256) % 256 for i in range(20000))"
)
DATA = eval(DATA_SOURCE)  # noqa: S307 - the same expression the sandboxed program runs
WRITE_DATA = (
    "import sys\n"
    f"data = {DATA_SOURCE}\n"
    "sys.stdout.buffer.write(data); sys.stdout.buffer.flush()\n"
    "sys.stderr.buffer.write(data[::-1]); sys.stderr.buffer.flush()\n"
    "sys.exit(3)\n"
)


def run_bytes(engine: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """isol8 with its output as bytes (the shared fixture decodes it)."""
    return subprocess.run(
        [ISOL8, "--engine", engine, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=180,
    )


def test_arbitrary_bytes_are_byte_exact_live_buffered_and_in_the_out_file(engine: str, tmp_path: Path) -> None:
    live_file, buffered_file = tmp_path / "live.bin", tmp_path / "buffered.bin"
    live = run_bytes(engine, "run", "--out", str(live_file), "-e", WRITE_DATA)
    assert live.returncode == 3, live.stderr[-2000:]
    assert live.stdout == DATA
    assert live.stderr == DATA[::-1]
    buffered = run_bytes(engine, "run", "--no-stream", "--out", str(buffered_file), "-e", WRITE_DATA)
    assert buffered.returncode == 3
    assert buffered.stdout == live.stdout
    assert buffered.stderr == live.stderr
    assert live_file.read_bytes() == DATA
    assert buffered_file.read_bytes() == DATA
    as_json = run_bytes(engine, "run", "--json", "-e", WRITE_DATA)
    assert json.loads(as_json.stdout)["stdout"] == DATA.decode("utf-8", "replace")


def test_out_that_cannot_be_written_fails_before_the_run(engine: str, tmp_path: Path) -> None:
    done = run_bytes(engine, "run", "--out", str(tmp_path / "missing" / "x"), "-e", "print(1)")
    assert done.returncode == 2
    assert done.stderr.decode().startswith(f"isol8: error: --out: cannot write {tmp_path / 'missing' / 'x'}: ")
    assert done.stdout == b""


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["live", "no-stream"])
def test_max_output_keeps_1000_of_5000_invalid_bytes(engine: str, mode: list[str]) -> None:
    program = "import sys; sys.stdout.buffer.write(b'\\x80' * 5000); sys.stderr.buffer.write(b'\\xff' * 5000)"
    done = run_bytes(engine, "run", *mode, "--max-output", "1000", "-e", program)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == b"\x80" * 1000
    assert done.stderr.startswith(b"\xff" * 1000)
    assert done.stderr[1000:] == b"[isol8] output truncated (limit 1000 bytes per stream)\n"


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["live", "no-stream"])
def test_max_output_on_arbitrary_bytes_keeps_a_prefix_of_at_least_limit_minus_3(engine: str, mode: list[str]) -> None:
    done = run_bytes(engine, "run", *mode, "--max-output", "1000", "-e", WRITE_DATA)
    assert done.returncode == 3
    assert DATA.startswith(done.stdout)
    assert 997 <= len(done.stdout) <= 1000


# ---- terminal safety ----------------------------------------------------------------------------

NASTY = (
    b"\x1b]52;c;aGVsbG8=\x07"  # OSC 52: write the clipboard
    b"\x1b]0;pwned-title\x07\x1b]2;pwned-two\x1b\\"  # window title, BEL- and ST-terminated
    b"\x1b[?1049h\x1b[2J\x1b[5;5H"  # alternate screen, clear, cursor movement
    b"\x1b[31mRED\x1b[0m"  # a colour: kept
    b"\rCR\x08BS\x07"
    b"\xc2\x9b2J\x9b2J"  # C1 CSI as UTF-8, and as a raw 8-bit byte
    b"\n"
)
SHOW_NASTY = f"import sys; d = {NASTY!r}; sys.stdout.buffer.write(d); sys.stdout.flush(); sys.stderr.buffer.write(d)"


def run_in_terminal(engine: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """isol8 with stdout and stderr on a pseudo-terminal; OPOST off, so what it wrote arrives unchanged."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        [ISOL8, "--engine", engine, *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**os.environ, **(env or {})},
    )
    os.close(slave)
    seen: list[bytes] = []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            seen.append(data)
        status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return status, b"".join(seen)


def without_colours(data: bytes) -> bytes:
    return re.sub(rb"\x1b\[[0-9;]*m", b"", data)


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["live", "no-stream"])
def test_a_terminal_sees_control_sequences_escaped_and_colours_kept(engine: str, mode: list[str]) -> None:
    status, shown = run_in_terminal(engine, "run", *mode, "-e", SHOW_NASTY)
    assert status == 0, shown[-2000:]
    expected = (
        rb"\x1b]52;c;aGVsbG8=\x07\x1b]0;pwned-title\x07\x1b]2;pwned-two\x1b" + b"\\"
        rb"\x1b[?1049h\x1b[2J\x1b[5;5H" + b"\x1b[31mRED\x1b[0m" + rb"\x0dCR\x08BS\x07\u009b2J\x9b2J" + b"\n"
    )
    assert shown.count(expected) == 2, shown  # once from stdout, once from stderr
    rest = without_colours(shown)
    assert not any(b < 0x20 and b != 0x0A for b in rest), rest
    assert b"\x9b" not in rest and b"\x7f" not in rest


def test_raw_passes_control_sequences_to_the_terminal(engine: str) -> None:
    status, shown = run_in_terminal(engine, "run", "--raw", "-e", SHOW_NASTY)
    assert status == 0, shown[-2000:]
    assert shown.count(NASTY) == 2, shown


def test_a_pipe_gets_control_sequences_unchanged(engine: str) -> None:
    done = run_bytes(engine, "run", "-e", SHOW_NASTY)
    assert (done.returncode, done.stdout, done.stderr) == (0, NASTY, NASTY)


# ---- secrets out of argv ------------------------------------------------------------------------


def command_lines() -> dict[int, bytes]:
    lines = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    lines[int(entry)] = f.read()
            except OSError:  # the process is gone, or not ours to read
                continue
    return lines


def environment(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_secret_from_the_environment_is_masked_and_in_no_command_line(engine: str) -> None:
    """Nor in the environment of any process isol8 starts: its engine clients, its reaper's watcher."""
    value = "tok-" + os.urandom(12).hex()
    program = "import os, time; v = os.environ['MY_TOKEN']; print(v, len(v), flush=True); time.sleep(4)"
    proc = subprocess.Popen(
        [ISOL8, "--engine", engine, "run", "--secret", "MY_TOKEN", "-e", program],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MY_TOKEN": value},
    )
    leaks: list[tuple[int, bytes]] = []
    saw_isol8 = saw_engine_client = False
    children: set[bytes] = set()
    while proc.poll() is None:
        for pid, line in command_lines().items():
            if value.encode() in line:
                leaks.append((pid, line))
            if pid == proc.pid and b"--secret\0MY_TOKEN" in line:
                saw_isol8 = True
            if line.split(b"\0", 1)[0].endswith(engine.encode()) and b"org.isol8.run.pid=%d\0" % proc.pid in line:
                saw_engine_client = True  # the engine client runs: the program is being started or running
            if pid != proc.pid and parent_of(pid) == proc.pid:
                children.add(line)
                if value.encode() in environment(pid):  # the value travels on stdin, not through a client
                    leaks.append((pid, b"environ"))
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert out == f"*** {len(value)}\n".encode()
    assert value.encode() not in err
    assert saw_isol8 and saw_engine_client, "the scan never saw the run"
    assert any(b"isol8-reaper" in line for line in children), children  # the watcher was checked too
    assert leaks == []


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_no_process_of_a_run_ever_has_a_variable_in_its_arguments(engine: str) -> None:
    """Where the scan above samples, strace sees every execve: podman's, conmon's, runc's and the
    container's own (docker's containers are its daemon's children, out of the client's reach; the
    wrapper is the same on both). A value that the wrapper put into env's arguments, for an instant
    between fork and exec, is caught every time (tried)."""
    assert shutil.which("strace"), "strace is missing: scripts/test-all installs it"
    value, plain = "tok-" + os.urandom(12).hex(), "plain-" + os.urandom(12).hex()
    trace = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-s", "65536", "-o", "/dev/stderr",
         ISOL8, "--engine", engine, "run", "--secret", "MY_TOKEN", "--env", f"PLAIN={plain}",
         "-e", "import os; print(len(os.environ['MY_TOKEN']), os.environ['PLAIN'][:5])"],
        stdin=subprocess.DEVNULL, capture_output=True, env={**os.environ, "MY_TOKEN": value}, timeout=120,
    )  # fmt: skip
    assert (trace.returncode, trace.stdout) == (0, b"%d plain\n" % len(value)), trace.stderr[-3000:]
    own = b'execve("%s", ' % ISOL8.encode()  # isol8's own command line holds --env's value, as given
    execs = [line for line in trace.stderr.splitlines() if b"execve(" in line and own not in line]
    assert any(b"python3" in line and b"/sandbox/main.py" in line for line in execs), execs  # the program's own
    assert [line for line in execs if value.encode() in line or plain.encode() in line] == []


def test_secret_file_is_masked_and_loses_one_trailing_newline(engine: str, tmp_path: Path) -> None:
    value = "file-" + os.urandom(12).hex()
    secret = tmp_path / "token.txt"
    secret.write_text(value + "\n")
    program = "import os; v = os.environ['FILE_TOKEN']; print(v, len(v), repr(v[-1]))"
    done = run_bytes(engine, "run", "--secret-file", f"FILE_TOKEN={secret}", "-e", program)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"*** {len(value)} {value[-1]!r}\n".encode()
    assert value.encode() not in done.stderr


def test_secret_name_that_is_not_set_is_exit_2(engine: str) -> None:
    assert "ISOL8_NOT_SET_ANYWHERE" not in os.environ
    done = run_bytes(engine, "run", "--secret", "ISOL8_NOT_SET_ANYWHERE", "-e", "print(1)")
    assert done.returncode == 2
    assert b"ISOL8_NOT_SET_ANYWHERE" in done.stderr


def test_a_reader_that_stops_early_ends_the_run_quietly_with_141_and_no_container_left(engine: str) -> None:
    """`isol8 run big.py | head -1`: the program is stopped, nothing is reported, nothing is left running."""
    from tests.integration.conftest import assert_no_containers

    code = "import itertools\nfor i in itertools.count(): print(i)"
    proc = subprocess.Popen(
        [ISOL8, "--engine", engine, "run", "-e", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"0\n"
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
    assert_no_containers(engine)
