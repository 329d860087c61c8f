"""The backstop outside the sandbox: a watcher process that removes this process's containers if it dies.

Shared by the backends: the engines' watcher (SCRIPT) removes containers and volumes; another
backend gives its own script and argv to watch_argv (the Kubernetes one deletes Pods).

Every container isol8 starts carries org.isol8.run.owner=<this process's token>. On the first one,
a small `sh` starts in its own session, with the read end of a pipe as its stdin. When this
process exits having removed all of its containers, it writes "done" and the watcher exits;
when it dies any other way (SIGKILL, a crash, a signal with no handler) the kernel closes the
pipe and the watcher removes every container (then volume) with the token (twice, a moment apart, to catch
one whose creation was still under way). The sandboxed program cannot reach it: it runs on the
host, outside the container's pid namespace and under another uid.
"""

from __future__ import annotations

import _thread  # threading's Lock, without threading's import on every run
import atexit
import os
from collections.abc import Callable, Collection

from isol8 import labels as L
from isol8.backends.engine.dialect import Dialect
from isol8.process import Watcher


# Only isol8's own values reach these scripts: a label made of a token of hex digits, then the
# client and the endpoint's options (from the config or the command line: never parsed by
# the shell, each its own word in "$@").
def script(sweep: str) -> str:
    """A watcher's script: on anything but "done", sweep (shell code that removes what carries
    "$label", by the client "$@") twice, a moment apart."""
    return (
        'set -f\nIFS= read -r word\n[ "$word" = done ] && exit 0\nlabel=$1\nshift\nfor pass in 1 2; do\n'
        + sweep
        + '  [ "$pass" = 2 ] || sleep 2\ndone\n'
    )


SCRIPT = script(
    """  ids=$("$@" ps -a -q --no-trunc --filter "label=$label")
  [ -z "$ids" ] || "$@" rm -f $ids
  vols=$("$@" volume ls -q --filter "label=$label")
  [ -z "$vols" ] || "$@" volume rm -f $vols
"""
)

_lock = _thread.allocate_lock()
_owner = os.urandom(8).hex()
_watchers: dict[tuple[str, ...], Watcher] = {}
_live: set[str] = set()


def owner_label() -> dict[str, str]:
    """The label that ties a container to this process (and its watcher)."""
    return {L.RUN_OWNER: _owner}


def watcher_argv(dialect: Dialect) -> list[str]:
    return ["/bin/sh", "-c", SCRIPT, "isol8-reaper", f"{L.RUN_OWNER}={_owner}", *dialect.cli]


def watch(dialect: Dialect, name: str) -> None:
    """Call before starting container `name`: from now on it is removed if this process dies."""
    watch_argv(dialect.cli, lambda: watcher_argv(dialect), name)


def watch_argv(key: tuple[str, ...], argv: Callable[[], list[str]], name: str) -> None:
    """watch(), for any backend: one watcher per key (an endpoint), started with argv() the first
    time; its script reads one line on stdin, and anything but "done" means remove them all."""
    with _lock:
        if key not in _watchers:
            if not _watchers:
                atexit.register(_at_exit)
            _watchers[key] = Watcher(argv())
        _live.add(name)


def release(name: str) -> None:
    """Call once container `name` is gone (or deliberately kept)."""
    with _lock:
        _live.discard(name)


def disown(names: Collection[str] = ()) -> None:
    """A backend's disown(): these (or, with none named, all of this process's) are no longer removed."""
    if not names:
        release_all()
    for name in names:
        release(name)


def release_all() -> None:
    """Call once every container of this process is known gone (a server that removed its own by label)."""
    with _lock:
        _live.clear()


def _at_exit() -> None:
    with _lock:
        clean = not _live
        watchers = list(_watchers.values())
    for watcher in watchers:
        watcher.finish(clean)
