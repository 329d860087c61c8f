"""A server session's record on Kubernetes: annotations of its Pod, kept through the API server.

The engines keep it as root inside the container (backends/engine/session_record.py); a
restricted Pod has no root, so here it is out of the container altogether, where its programs
cannot reach it. Every change is a merge patch that carries the resourceVersion it was decided
on: the API server refuses it (Conflict) when the Pod changed meanwhile, and the verb is
decided again. That is the engines' flock and mkdir lock in Kubernetes' terms, and what lets
any replica take a turn in any session. Pure: decide() is the verbs' logic, pinned by
tests/unit/test_kube_backend.py; the backend reads, patches and sweeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from isol8.records import NamedTuple

TURN = "org.isol8.session.turn"  # "TOKEN UNTIL": who holds the turn, and when its lease ends
USED = "org.isol8.session.used"  # when the last turn ended
STATE = "org.isol8.session.state"  # what the server saved (its run-time packages, as JSON)
BUSY, LOST = 3, 4  # the exit codes of the engines' record: the turn is another's; it is no longer ours
# the release's sweep, as the sandbox user (the only user a restricted Pod has): every process but
# PID 1 (the namespace's init, spared by kill -1) and the sweep itself, three times over (a child
# forked while a round went by is the next round's; one killed forks no more). Never "until none
# is left": PID 1 starts its sleep again each time it is killed.
SWEEP = "for _ in 1 2 3; do kill -KILL -1 2>/dev/null; done; exit 0"


class Record(NamedTuple):
    version: str  # the Pod's resourceVersion it was read at
    turn: tuple[str, int] | None
    used: int | None
    state: str


class Decision(NamedTuple):
    changes: dict[str, str | None]  # annotations to set (None: remove); empty: nothing to patch
    output: str = ""
    failure: tuple[int, str] | None = None  # (exit code, message), as the engines' record fails
    sweep: bool = False


def read(pod: Mapping[str, Any]) -> Record:
    meta = pod.get("metadata") or {}
    notes = meta.get("annotations") or {}
    turn = None
    token, _, until = str(notes.get(TURN, "")).partition(" ")
    if token and until.isdigit():
        turn = (token, int(until))
    used = str(notes.get(USED, ""))
    return Record(
        str(meta.get("resourceVersion", "")), turn, int(used) if used.isdigit() else None, notes.get(STATE, "")
    )


def decide(verb: str, args: Sequence[str], data: str, record: Record, now: int) -> Decision:
    """One verb of the engines' SESSION_CONTROL (see its session_control_argv), on this record."""
    held = record.turn
    free = held is None or now > held[1]
    if verb == "claim":
        token, lease = args[0], int(args[1])
        if not free and held is not None and held[0] != token:  # its own claim again keeps it
            return Decision({}, failure=(BUSY, "session busy"))
        return Decision({TURN: f"{token} {now + lease}"}, output=record.state)
    if verb == "status":
        busy = 0 if held is None else 1
        return Decision({}, output=f"{busy} {record.used or now} {now}\n{record.state}")
    if verb == "expire":
        if not free:
            return Decision({}, output="busy")
        used = record.used if record.used is not None else now
        noted: dict[str, str | None] = {} if record.used is not None else {USED: str(now)}
        if now - used > int(args[0]):
            return Decision({**noted, TURN: f"expire-{record.version} {now + 60}"}, output="expired")
        return Decision({**noted, TURN: None} if held is not None else noted, output="fresh")
    if verb in ("save", "release"):
        if held is None or held[0] != args[0]:
            return Decision({}, failure=(LOST, "turn lost"))
        if verb == "save":
            return Decision({STATE: data})
        return Decision({USED: str(now), TURN: None}, sweep=args[1] == "1")
    raise ValueError(f"no session verb {verb!r}")


def patch(record: Record, changes: Mapping[str, str | None]) -> dict[str, Any]:
    """The merge patch of changes, valid only on the Pod as it was read."""
    return {"metadata": {"resourceVersion": record.version, "annotations": dict(changes)}}
