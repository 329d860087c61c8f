"""Whether the isol8 process that created a container (or volume) is still there to use it.

`isol8 cleanup` removes only what its owner left behind: a live `isol8 serve` keeps its warm
pool and sessions, and a run in progress keeps its container. The owner is told by the labels
every container carries (isol8.labels.run_labels): the host it ran on, its pid, and when it
created the container, so that a pid the system has since given to another process is not
mistaken for the owner."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from isol8 import labels as L

# The process's start time comes from /proc in clock ticks since boot, and the boot time in whole
# seconds: a process that started this much after the label's time is another one.
START_SLACK_S = 2.0


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch); None if there is no such process.
    Where /proc has no start time to give, a live process counts as started at 0 (before anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process: alive
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return 0.0


def owner_gone(
    labels: Mapping[str, str], *, host: str, started_of: Callable[[int], float | None] = process_started
) -> bool:
    """True when what carries these labels was created on `host` by an isol8 process that has
    ended. Another host's owner cannot be checked from here: never gone. Labels too damaged to
    name an owner: gone (nothing can be waiting for it). A server fleet's session is the fleet's,
    not its creator's: never gone (its replicas expire it; --all or --stale-after remove it)."""
    if labels.get(L.RUN_HOST) != host:
        return False
    if L.FLEET in labels and L.SERVER_ID not in labels:
        return False  # a server fleet's session: any replica serves it, the one that made it or not
    try:
        pid, created = int(labels[L.RUN_PID]), float(labels[L.RUN_STARTED])
    except (KeyError, ValueError):
        return True
    started = started_of(pid)
    return started is None or started > created + START_SLACK_S


def this_host() -> str:
    return L.host_identity()


def cleanup_scope(*, everyone: bool = False, stale_after_ms: int | None = None) -> Callable[[Mapping[str, str]], bool]:
    """What `isol8 cleanup` removes, by labels: what an ended owner of this host left; with
    everyone, all; with stale_after_ms, also what any owner created longer ago than that."""
    import time

    host, now = this_host(), time.time()

    def removable(labels: Mapping[str, str]) -> bool:
        if everyone or owner_gone(labels, host=host):
            return True
        return stale_after_ms is not None and older_than(labels, stale_after_ms / 1000, now=now)

    return removable


def older_than(labels: Mapping[str, str], seconds: float, *, now: float) -> bool:
    """Created (its org.isol8.run.started label) more than `seconds` ago, by any owner on any host;
    labels that do not say when: old."""
    try:
        return now - float(labels[L.RUN_STARTED]) > seconds
    except (KeyError, ValueError):
        return True
