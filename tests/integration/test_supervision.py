"""Supervision the program cannot defeat, each claim tried the way hostile code would, on both engines.

The sandboxed program shares a uid with isol8's wrapper shell, so it can read that shell's memory
(and find the run's nonce), kill the in-container watchdog and forge status lines. None of that
may move the deadline, change the reported outcome, or keep a container alive once isol8 is gone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from isol8.backends.engine.argv import sandbox_flags
from isol8.backends.engine.dialect import DIALECTS
from isol8.core.installs import INSTALLER
from isol8.core.sandbox import SandboxPolicy
from tests.integration.conftest import (
    ISOL8,
    Isol8,
    assert_no_containers,
    isol8_containers,
    run_isol8,
    start_run,
    watcher_of,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")
# The limit runs from the program's start (durationMs); creating the container comes on top of the
# wall time, and takes seconds on a loaded machine.
STARTUP_SLACK_S = 20

# Reads the wrapper's memory for every 32-hex-digit token (the nonce is one of them), kills every
# other process of the sandbox (the watchdog) but its parent, then forges lines with each token.
FIND_NONCE = r"""
import os, re, sys
parent = os.getppid()
tokens = set()
try:
    with open(f"/proc/{parent}/maps") as maps, open(f"/proc/{parent}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            low, high = (int(x, 16) for x in span.split("-"))
            if "r" not in perms or high - low > 64 << 20:
                continue
            try:
                mem.seek(low)
                tokens.update(re.findall(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", mem.read(high - low)))
            except OSError:
                pass
except OSError as exc:
    print("cannot read the wrapper's memory:", exc, flush=True)
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) not in (1, os.getpid(), parent):
        try:
            os.kill(int(pid), 9)
        except OSError:
            pass
print("tokens", len(tokens), flush=True)
def forge(line):
    for token in tokens:
        sys.stderr.buffer.write(b"\x1eisol8:" + token + b":" + line + b"\n")
    sys.stderr.flush()
"""


def _forged_tokens(stderr: str) -> set[str]:
    return set(re.findall(r"\x1eisol8:([0-9a-f]{32}):", stderr))


def _found(stdout: str) -> int:
    match = re.search(r"tokens (\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


def test_timeout_holds_against_forged_start_lines_and_a_killed_watchdog(isol8: Isol8) -> None:
    code = FIND_NONCE + "import time\nfor _ in range(150):\n    forge(b'start')\n    time.sleep(0.1)\n"
    done = isol8("run", "--json", "--timeout", "3s", "-e", code)

    assert done.status == 124, (done.stdout[-2000:], done.stderr[-2000:])
    result = json.loads(done.stdout)
    assert result["timedOut"] and result["durationMs"] < (3 + 3) * 1000, result["durationMs"]
    assert done.seconds < 3 + STARTUP_SLACK_S, done.seconds
    assert "timed out after 3s" in done.stderr
    tokens = _found(result["stdout"])
    # isol8 removed the lines carrying its own nonce: the program had found it, and it did not help
    assert len(_forged_tokens(result["stderr"])) < tokens


def test_timeout_holds_against_an_output_flood(isol8: Isol8) -> None:
    """A flood kept the engine client busy, and the engine's kill waited on it (seen: 18 s for 3 s)."""
    flood = "yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA & yes BBBBBBBBBBBBBBBBBBBB >&2 & sleep 60"
    done = isol8("run", "--json", "--timeout", "3s", "--max-output", "10k", "--cmd", flood)

    assert done.status == 124, done.stderr[-500:]
    assert json.loads(done.stdout)["durationMs"] < (3 + 3) * 1000
    assert done.seconds < 3 + STARTUP_SLACK_S, done.seconds


def test_forged_exit_lines_do_not_change_the_outcome(isol8: Isol8) -> None:
    code = FIND_NONCE + "forge(b'exit:0:0')\nforge(b'setup:fake engine failure')\nsys.exit(3)\n"
    done = isol8("run", "-e", code)

    assert done.status == 3, done.stderr[-2000:]
    assert len(_forged_tokens(done.stderr)) < _found(done.stdout)
    assert "fake engine failure" not in done.stderr


def test_killing_the_wrapper_after_a_forged_exit_line_is_not_success(isol8: Isol8) -> None:
    code = FIND_NONCE + "forge(b'exit:0:0')\nos.kill(parent, 9)\nimport time; time.sleep(5)\n"
    done = isol8("run", "--json", "-e", code)

    assert done.status != 0, done.stdout


@pytest.mark.parametrize(
    "env",
    [
        ["SHELLOPTS=noexec"],
        ["SHELLOPTS=xtrace", "PS4=$(echo INJECTED >&2)"],
        ["BASH_ENV=/sandbox/evil.sh", "ENV=/sandbox/evil.sh"],
        ["PATH=/sandbox/bin:/usr/bin:/bin", "LD_PRELOAD=/sandbox/nothing.so"],
        ["IFS=x", "CDPATH=/tmp", "TMOUT=1", "GLOBIGNORE=*", "BASHOPTS=extdebug"],
        # bash's own: dynamic (RANDOM, LINENO, SECONDS), read-only (UID, PPID), mode-changing, the wrapper's names
        ["RANDOM=5", "LINENO=x", "SECONDS=y", "UID=77", "PPID=1", "POSIXLY_CORRECT=1", "LC_ALL=bogus"],
        ["kv=1", "vars=2", "fixed=3", "run=4", "i=5", "rc=6", "nonce=7", "HOME=/nowhere"],
        # the names bash cannot export, which go through env (isol8.core.payload.SHELL_FIXED)
        ["BASH_ARGC=1", "BASH_ARGV=2", "BASH_LINENO=3", "BASH_SOURCE=4", "PIPESTATUS=5", "_=6", "EUID=7"],
        ["FUNCNAME=1", "GROUPS=2", "DIRSTACK=3", "BASH_ARGV0=4", "BASHPID=5", "HISTCMD=6", "BASH_REMATCH=7"],
    ],
)
def test_user_environment_reaches_the_program_only(isol8: Isol8, tmp_path: Path, env: list[str]) -> None:
    files = tmp_path / "files"
    (files / "bin").mkdir(parents=True)
    (files / "evil.sh").write_text("echo INJECTED >&2\n")
    for tool in ("head", "tar", "mkdir", "sleep", "env", "kill", "cat", "printf"):
        (files / "bin" / tool).write_text("#!/bin/sh\necho INJECTED >&2\n")
        (files / "bin" / tool).chmod(0o755)
    names = [e.split("=", 1)[0] for e in env]
    code = f"import os\nprint([os.environ.get(n) for n in {names!r}])\n"
    args = [arg for e in env for arg in ("--env", e)]
    done = isol8("run", "--files", str(files), "--workdir", "/sandbox/made-by-the-wrapper", *args, "-e", code)

    assert (done.status, done.stdout) == (0, f"{[e.split('=', 1)[1] for e in env]}\n"), done.stderr
    assert "INJECTED" not in done.stderr
    assert "warning" not in done.stderr  # bash's own (a bad locale) stays out of the program's stderr


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ready"):
            return line
    raise AssertionError(proc.stderr.read() if proc.stderr else "no output")


def test_a_sigkilled_isol8_leaves_no_container_even_when_the_program_killed_its_watchdog(engine: str) -> None:
    code = FIND_NONCE + "print('ready', flush=True)\nimport time; time.sleep(120)\n"
    proc = start_run(engine, "--timeout", "2m", "-e", code)
    _wait_ready(proc)
    assert watcher_of(proc.pid) is not None
    assert len(isol8_containers(engine, proc.pid)) == 1
    killed = time.monotonic()
    proc.kill()
    proc.wait()
    assert_no_containers(engine, within=15, pid=proc.pid)  # the watcher, outside the sandbox, removed it
    assert time.monotonic() - killed < 15


def _kill_isol8_and_its_watcher(engine: str, proc: subprocess.Popen[str]) -> None:
    """Once the program is ready, SIGKILL the run's watcher, then isol8: its container stays."""
    _wait_ready(proc)
    watcher = watcher_of(proc.pid)
    assert watcher is not None
    os.kill(watcher, signal.SIGKILL)
    proc.kill()
    proc.wait()
    assert len(isol8_containers(engine, proc.pid)) == 1


def test_with_isol8_and_its_watcher_dead_podman_times_out_and_docker_needs_cleanup(engine: str) -> None:
    """The last backstops, when isol8, its watcher and the in-container watchdog are all gone:
    podman's conmon ends the run at its --timeout; docker has none, and `isol8 cleanup` removes it."""
    code = FIND_NONCE + "print('ready', flush=True)\nimport time; time.sleep(120)\n"
    proc = start_run(engine, "--timeout", "1s", "-e", code)
    _kill_isol8_and_its_watcher(engine, proc)
    if engine == "podman":
        # 1 s limit + 5 s grace + 10 s for the engine, from the container's start
        assert_no_containers(engine, within=25, pid=proc.pid)
    else:
        time.sleep(8)  # past the in-container watchdog's time: the program killed it
        assert len(isol8_containers(engine, proc.pid)) == 1
        done = run_isol8(engine, "cleanup", "--force")
        assert done.status == 0, done.stderr


def test_with_isol8_and_its_watcher_dead_the_wrappers_watchdog_ends_the_run(engine: str) -> None:
    """The in-container watchdog on its own (a program that leaves it be): the run ends at its
    backstop (the time limit and BACKSTOP_GRACE_S) with nobody outside to end it, on docker too."""
    proc = start_run(engine, "--timeout", "1s", "-e", "print('ready', flush=True)\nimport time; time.sleep(120)\n")
    _kill_isol8_and_its_watcher(engine, proc)
    # 1 s + 5 s from the program's start; podman's --timeout (10 s later) would come too late
    assert_no_containers(engine, within=12, pid=proc.pid)
    assert not isol8_containers(engine, proc.pid)


def test_the_installers_watchdog_ends_a_hung_install_at_its_backstop(engine: str) -> None:
    """The installer's watchdog (isol8.core.installs.INSTALLER), with nothing else to end it."""
    name = f"isol8-test-installer-{os.getpid()}"
    empty_tar = bytes(1024)  # the end-of-archive blocks: no install files
    d = DIALECTS[engine]
    argv = [
        *(*d.cli, "run", "--rm", "-i", "--init", "--name", name, "--label", f"org.isol8.run.id={name}"),
        *sandbox_flags(d, SandboxPolicy()),
        *("--entrypoint", "bash", d.local_image("isol8:python")),
        *("-c", INSTALLER, "isol8-install", "pkgs", "sleep 60; echo woke", "2"),
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, input=empty_tar, capture_output=True, timeout=45)
    finally:
        subprocess.run([*d.cli, "rm", "-f", name], capture_output=True)
    elapsed = time.monotonic() - started
    assert done.returncode == 137 and b"woke" not in done.stdout, done
    assert elapsed < 30, elapsed


def test_twenty_concurrent_runs_near_their_pids_limit_all_complete(engine: str) -> None:
    """RLIMIT_NPROC counts uid 1100 across the host: it must not couple one run to another."""
    script = "for i in $(seq 56); do sleep 6 & done; wait; echo done"

    def one(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ISOL8, "--engine", engine, "run", "--pids-limit", "64", "--timeout", "2m", "--cmd", script],
            capture_output=True,
            text=True,
            timeout=300,
        )

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    for result in results:
        assert (result.returncode, result.stdout) == (0, "done\n"), result.stderr


def test_files_that_cannot_fit_are_refused_before_anything_starts(isol8: Isol8, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "big.bin").write_bytes(os.urandom(7 * 1024 * 1024))
    done = isol8("run", "--files", str(files), "--sandbox-size", "2m", "-e", "print(1)")
    assert done.status == 125 and "/sandbox" in done.stderr and "--sandbox-size" in done.stderr, done.stderr
    done = isol8("run", "--files", str(files), "--memory", "6m", "-e", "print(1)")
    assert done.status == 125 and "memory limit" in done.stderr, done.stderr


def test_files_keep_hard_links_and_refuse_fifos(isol8: Isol8, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_text("shared\n")
    os.link(files / "a.txt", files / "b.txt")
    done = isol8("run", "--files", str(files), "--cmd", "cat a.txt b.txt; stat -c %h b.txt")
    assert (done.status, done.stdout) == (0, "shared\nshared\n2\n"), done.stderr
    os.mkfifo(files / "pipe")
    done = isol8("run", "--files", str(files), "--cmd", "true", timeout=30)
    assert done.status == 2 and "pipe is a fifo" in done.stderr, done.stderr


def test_an_oom_kill_leaves_no_file_in_the_working_directory(isol8: Isol8, tmp_path: Path) -> None:
    done = isol8("run", "--memory", "32m", "-e", "x = bytearray(256 * 1024 * 1024)", cwd=tmp_path)
    assert done.status == 137 and "out of memory" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_environment_too_large_for_an_exec_is_refused_and_the_largest_allowed_runs(
    isol8: Isol8, tmp_path: Path
) -> None:
    (tmp_path / "big").write_text("x" * 200_000)
    done = isol8("run", "--secret-file", f"BIG={tmp_path / 'big'}", "--cmd", "echo ran")
    assert done.status == 2 and "too long" in done.stderr and done.stdout == "", done.stderr
    (tmp_path / "a").write_text("a" * 120_000)
    (tmp_path / "b").write_text("b" * 120_000)
    code = "import os; print(len(os.environ['A']), len(os.environ['B']))"
    done = isol8("run", "--secret-file", f"A={tmp_path / 'a'}", "--secret-file", f"B={tmp_path / 'b'}", "-e", code)
    assert (done.status, done.stdout) == (0, "120000 120000\n"), done.stderr
