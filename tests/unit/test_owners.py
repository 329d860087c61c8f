"""Whose containers `isol8 cleanup` may remove: only those whose isol8 process, on this host, has ended."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from isol8 import labels as L
from isol8.core.owners import START_SLACK_S, cleanup_scope, owner_gone, process_started, this_host

CREATED = 1_800_000_000.0


def labelled(host: str = "here", pid: object = 4242, created: object = CREATED) -> dict[str, str]:
    return {L.RUN_ID: "isol8-x", L.RUN_HOST: host, L.RUN_PID: str(pid), L.RUN_STARTED: str(created)}


@pytest.mark.parametrize(
    ("labels", "started", "gone"),
    [
        (labelled(), None, True),  # no such process
        (labelled(), CREATED - 60, False),  # the owner, started before it created the container
        (labelled(), CREATED + START_SLACK_S / 2, False),  # within the clocks' slack
        (labelled(), CREATED + START_SLACK_S + 1, True),  # the pid was given to a later process
        (labelled(host="elsewhere"), None, False),  # another host's: cannot be checked from here
        ({L.RUN_ID: "isol8-x"}, None, False),  # no host: not known to be this host's
        (labelled(pid="x"), CREATED - 60, True),  # labels that name no owner: nothing waits for it
        (labelled(created=""), CREATED - 60, True),
    ],
    ids=repr,
)
def test_owner_gone(labels: dict[str, str], started: float | None, gone: bool) -> None:
    assert owner_gone(labels, host="here", started_of=lambda pid: started) is gone


def test_this_process_has_started_and_a_reaped_child_has_not() -> None:
    mine = process_started(os.getpid())
    assert mine is not None and 0 < mine <= time.time()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_started(child.pid) is None


def test_a_live_owner_of_this_host_keeps_its_containers() -> None:
    labels = L.run_labels("isol8-x")
    assert owner_gone(labels, host=this_host()) is False
    assert labels[L.RUN_HOST] == this_host()


def test_the_host_names_its_pid_namespace_so_one_kernels_containers_are_two_hosts() -> None:
    """A process in another pid namespace (a container beside this one, sharing the engine) has
    pids that mean nothing here, so it must be another host even with the same name."""
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()[:8]
    assert this_host() == f"{os.uname().nodename}/{boot}-{os.stat('/proc/self/ns/pid').st_ino}"
    other = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-c",
            "from isol8 import labels; print(labels.host_identity())",
        ],
        capture_output=True,
        text=True,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().split("/")[0] == os.uname().nodename
    assert other.stdout.strip() != this_host()


@pytest.mark.parametrize(
    ("labels", "everyone", "stale_ms", "removed"),
    [
        (labelled(host="elsewhere", created=time.time() - 7200), False, None, False),
        (labelled(host="elsewhere", created=time.time() - 7200), False, 3_600_000, True),
        (labelled(host="elsewhere", created=time.time() - 60), False, 3_600_000, False),
        (labelled(host="elsewhere", created=""), False, 3_600_000, True),  # says no age: old
        (labelled(host="elsewhere"), True, None, True),
    ],
)
def test_cleanups_scope(labels: dict[str, str], everyone: bool, stale_ms: int | None, removed: bool) -> None:
    assert cleanup_scope(everyone=everyone, stale_after_ms=stale_ms)(labels) is removed
