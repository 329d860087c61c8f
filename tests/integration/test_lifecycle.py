"""Nothing is left behind: signals, SIGKILL plus cleanup, many runs at once, and cleanup's scope."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import (
    ISOL8,
    Isol8,
    assert_no_containers,
    isol8_containers,
    run_isol8,
    start_run,
    watcher_of,
)
from tests.integration.remote import podman_service


def _wait_for_output(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == expected, proc.stderr.read() if proc.stderr else ""


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_kills_and_removes_the_container(engine: str, sig: signal.Signals, status: int) -> None:
    proc = start_run(engine, "-e", "import time; print('ready', flush=True); time.sleep(60)")
    _wait_for_output(proc, "ready")
    assert len(isol8_containers(engine)) == 1
    started = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == status
    assert time.monotonic() - started < 10
    assert_no_containers(engine)


def _handlers_set(pid: int, within: float = 10) -> bool:
    """Whether isol8 `pid` catches SIGINT and SIGTERM (its run's handlers, set just before the engine
    client starts) within that many seconds, as the kernel shows it (SigCgt in /proc/PID/status)."""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as status:
                caught = next(int(line.split()[1], 16) for line in status if line.startswith("SigCgt:"))
        except (FileNotFoundError, StopIteration):
            return False
        if caught & wanted == wanted:
            return True
        time.sleep(0.0005)
    return False


def test_a_signal_at_any_moment_of_a_runs_start_leaves_nothing(engine: str) -> None:
    """SIGINT and SIGTERM in turn, at 25 moments from the setting of isol8's handlers through the
    engine client's start (where a handler that raised would lose the client's pid), the
    container's creation and the program's start: every isol8 ends with 130 or 143, and no
    container, engine client or process of a half-made container is left (podman's client, killed
    while it made one, left conmon and `runc init` running). Before the handlers, a signal is
    Python's and the shell's business: a CI job in the background even has SIGINT ignored."""
    ended = []
    for i, delay_ms in enumerate(range(0, 250, 10)):
        proc = start_run(engine, "--timeout", "30s", "-e", "import time; time.sleep(30)")
        try:
            assert _handlers_set(proc.pid), proc.communicate(timeout=30)
            time.sleep(delay_ms / 1000)
            proc.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        ended.append((delay_ms, proc.returncode, stderr[-300:]))
    assert [(t, status) for t, status, _ in ended if status not in (130, 143)] == [], ended
    assert_no_containers(engine, within=15)
    # an engine client, or what podman's starts (conmon -n NAME, `runc init`), left running unknown to the engine
    left = subprocess.run(["pgrep", "-af", "isol8-[0-9a-f]{16}"], capture_output=True, text=True).stdout
    assert left == "", left


def test_a_program_that_ignores_sigterm_holds_up_a_ctrl_c_by_the_grace_at_most(engine: str) -> None:
    """isol8 asks its engine client to stop with SIGTERM before SIGKILL (podman's, killed outright,
    left half-made containers). The client passes the SIGTERM on to the program: one that ignores
    it delays isol8's end by the 2 s grace at most, and still nothing is left."""
    proc = start_run(engine, "--cmd", "trap '' TERM INT; echo ready; while :; do sleep 1; done")
    _wait_for_output(proc, "ready")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert time.monotonic() - started < 8
    assert_no_containers(engine)
    left = subprocess.run(["pgrep", "-af", "isol8-[0-9a-f]{16}"], capture_output=True, text=True).stdout
    assert left == "", left


def test_cleanup_removes_what_a_sigkilled_isol8_and_its_watcher_left(engine: str) -> None:
    proc = start_run(engine, "--timeout", "2m", "-e", "import time; print('ready', flush=True); time.sleep(120)")
    _wait_for_output(proc, "ready")
    watcher = watcher_of(proc.pid)
    assert watcher is not None
    os.kill(watcher, signal.SIGKILL)  # else it removes the container as soon as isol8 dies
    proc.kill()
    proc.wait()
    assert len(isol8_containers(engine)) == 1  # isol8 had no chance to clean up
    dry = run_isol8(engine, "cleanup", "--dry-run")
    assert dry.status == 0 and "would be removed" in dry.stdout
    assert len(isol8_containers(engine)) == 1
    done = run_isol8(engine, "cleanup", "--force")
    assert done.status == 0, done.stderr
    assert_no_containers(engine)


def test_cleanup_leaves_a_run_in_progress_unless_all(engine: str) -> None:
    proc = start_run(engine, "--timeout", "2m", "-e", "import time; print('ready', flush=True); time.sleep(120)")
    try:
        _wait_for_output(proc, "ready")
        assert len(isol8_containers(engine, proc.pid)) == 1
        done = run_isol8(engine, "cleanup", "--force")
        assert (done.status, done.stdout) == (0, "nothing to remove\n"), done.stderr
        assert f"left 1 container(s) whose isol8 process is still running (pid {proc.pid} on " in done.stderr
        assert len(isol8_containers(engine, proc.pid)) == 1 and proc.poll() is None
        forced = run_isol8(engine, "cleanup", "--force", "--all")
        assert forced.status == 0 and "removed 1 container(s)" in forced.stdout, forced.stdout + forced.stderr
        assert proc.wait(timeout=30) != 0  # its container went away under it
        assert_no_containers(engine, pid=proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_cleanup_leaves_containers_isol8_did_not_create(engine: str) -> None:
    image = "localhost/isol8:bash" if engine == "podman" else "isol8:bash"
    name = f"not-isol8s-{os.getpid()}"
    subprocess.run([engine, "run", "-d", "--name", name, image, "sleep", "60"], check=True, capture_output=True)
    try:
        # it carries org.isol8.managed=true, copied from the image's labels, and must still be left alone
        labels = subprocess.run(
            [engine, "inspect", "--format", "{{json .Config.Labels}}", name], capture_output=True, text=True, check=True
        ).stdout
        assert '"org.isol8.managed":"true"' in labels
        done = run_isol8(engine, "cleanup", "--force")
        assert done.status == 0
        still = subprocess.run([engine, "inspect", name], capture_output=True)
        assert still.returncode == 0
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True)


def test_many_runs_in_parallel_with_every_outcome_leave_nothing(engine: str) -> None:
    cases = [
        (["-e", "import sys; print(sys.argv[0].endswith('main.py'), {i})"], 0, "True {i}\n"),
        (["-e", "import sys; print({i}); sys.exit(1)"], 1, "{i}\n"),
        # sleeping, not spinning: 20 busy loops on 2 cores would starve the other runs' output
        (["--timeout", "2s", "--cmd", "echo {i}; sleep 60"], 124, "{i}\n"),
        (["--memory", "48m", "-e", "print({i}, flush=True); b = bytearray(400 << 20)"], 137, "{i}\n"),
        (["--cmd", "echo {i}; exit 3"], 3, "{i}\n"),
    ]
    jobs = [(i, cases[i % len(cases)]) for i in range(100)]

    def one(job: tuple[int, tuple[list[str], int, str]]) -> tuple[int, int, str, int, str]:
        i, (args, status, out) = job
        done = run_isol8(engine, "run", *[a.replace("{i}", str(i)) for a in args])
        return i, done.status, done.stdout, status, out.replace("{i}", str(i))

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, jobs))
    wrong = [(i, got, out) for i, got, out, status, expected in results if (got, out) != (status, expected)]
    assert wrong == []
    assert_no_containers(engine, within=15)


def test_missing_base_image_is_built_on_first_run(engine: str, isol8: Isol8) -> None:
    image = "localhost/isol8:bash" if engine == "podman" else "isol8:bash"
    subprocess.run([engine, "rmi", "-f", image], capture_output=True, check=True)
    done = isol8("run", "--cmd", "echo built and ran")
    assert (done.status, done.stdout) == (0, "built and ran\n"), done.stderr
    assert "isol8:bash is missing; building it first" in done.stderr
    assert_no_containers(engine)


def test_cleanup_spares_a_run_of_another_pid_namespace_sharing_the_engine(engine: str, tmp_path: Path) -> None:
    """Two "hosts" with one name and one engine: an isol8 in its own pid namespace (as in a CI
    container beside this one) runs a program; its pid means nothing here, so cleanup from here
    leaves the run alone, and only --stale-after (any owner, by age) removes it. podman is shared
    through its service's socket, as a remote podman is (its containers' monitors then belong to
    the service, not to the pid namespace of the client that asked)."""
    with contextlib.ExitStack() as stack:
        where: tuple[str, ...] = ()
        if engine == "podman":
            where = ("--url", f"unix://{stack.enter_context(podman_service(tmp_path / 'p.sock'))}")
        code = "import time; print('ready', flush=True); time.sleep(120)"
        # inside, isol8 gets a pid that no process has out here: checked here, it would look gone
        free = next(p for p in range(30000, 20000, -1) if not os.path.exists(f"/proc/{p}"))
        inner = f'echo {free - 1} >/proc/sys/kernel/ns_last_pid && "$@"'
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", inner, "sh"]
            + [ISOL8, "--engine", engine, *where, "run", "--timeout", "2m", "-e", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        stack.callback(proc.wait)
        stack.callback(proc.kill)
        _wait_for_output(proc, "ready")
        assert len(isol8_containers(engine)) == 1
        assert _labels_of(engine)["org.isol8.run.pid"] == str(free)
        spared = run_isol8(engine, *where, "cleanup", "--force")
        assert (spared.status, spared.stdout) == (0, "nothing to remove\n"), spared.stderr
        assert len(isol8_containers(engine)) == 1 and proc.poll() is None
        young = run_isol8(engine, *where, "cleanup", "--force", "--stale-after", "1h")
        assert young.stdout == "nothing to remove\n" and proc.poll() is None
        time.sleep(1.1)
        stale = run_isol8(engine, *where, "cleanup", "--force", "--stale-after", "1s")
        assert stale.status == 0 and "removed 1 container(s)" in stale.stdout, stale.stdout + stale.stderr
        assert proc.wait(timeout=30) != 0  # its container went away under it
    assert_no_containers(engine)


def _labels_of(engine: str) -> dict[str, str]:
    (only,) = isol8_containers(engine)
    done = subprocess.run(
        [engine, "inspect", "--format", "{{json .Config.Labels}}", only], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    labels: dict[str, str] = json.loads(done.stdout)
    return labels
