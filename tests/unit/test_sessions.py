"""Server sessions' bookkeeping (isol8/frontends/server/sessions.py) over an engine kept in memory.

The session record's script itself (backends/engine/session_record.py) runs for real in
tests/integration/test_server.py; here a small model of its verbs stands in for it, so that what
two replicas of one fleet do with one engine's sessions can be driven step by step."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from isol8 import labels as L
from isol8 import runtimes
from isol8.config import PackageSettings
from isol8.core.runner import RunRequest
from isol8.ecosystems import parse_specs
from isol8.errors import ContainerNameInUse, ContainerNotFound, EngineError, RequestError
from isol8.frontends.server import sessions as sessions_module
from isol8.frontends.server.session import container_name
from isol8.frontends.server.sessions import Sessions
from isol8.models import ContainerInfo


class Engine:
    """Containers by name, each with a session record as SESSION_CONTROL keeps it; its clock is the test's."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.started: list[tuple[str, bool]] = []  # (name, outlives)
        self.now = 1000
        self.crowded: set[str] = set()  # containers whose programs took every pid: no exec starts
        self.killed = 0  # the next execs killed by another turn's sweep
        self._ids = itertools.count(1)

    def local_image(self, ref: str) -> str:
        return ref

    def start_standby(self, spec: Any, *, outlives: bool = False) -> str:
        if any(c["name"] == spec.name for c in self.containers.values()):
            raise ContainerNameInUse(["docker", "run"], 125, "", "the container name is already in use")
        cid = f"id{next(self._ids)}"
        self.containers[cid] = {"name": spec.name, "labels": dict(spec.labels), "turn": None, "used": None, "state": ""}
        self.started.append((spec.name, outlives))
        return cid

    def _get(self, ref: str) -> tuple[str, dict[str, Any]]:
        for cid, c in self.containers.items():
            if ref in (cid, c["name"]):
                return cid, c
        raise ContainerNotFound(["docker", "exec"], 1, "", "No such container")

    def inspect_containers(self, refs: Sequence[str]) -> list[ContainerInfo]:
        found = []
        for ref in refs:
            try:
                cid, c = self._get(ref)
            except ContainerNotFound:
                continue
            found.append(ContainerInfo(cid, c["name"], c["labels"], True, None, False, "img"))
        return found

    def list_containers(self, labels: Mapping[str, str | None]) -> list[str]:
        def match(c: dict[str, Any]) -> bool:
            return all(k in c["labels"] and v in (None, c["labels"][k]) for k, v in labels.items())

        return [cid for cid, c in self.containers.items() if match(c)]

    def remove_containers(self, ids: Sequence[str]) -> None:
        for ref in ids:
            try:
                del self.containers[self._get(ref)[0]]
            except ContainerNotFound:
                pass

    def session_control(self, name: str, verb: str, args: Sequence[str] = (), *, data: bytes = b"", **_: Any) -> str:
        cid, c = self._get(name)
        if cid in self.crowded:
            raise EngineError(["docker", "exec"], 126, "", "fork: resource temporarily unavailable")
        if self.killed:
            self.killed -= 1
            raise EngineError(["docker", "exec"], 137, "", "")
        turn = c["turn"]
        free = turn is None or self.now > turn[1]
        if verb == "claim":
            if not free:
                raise EngineError(["docker", "exec"], 3, "", "session busy")
            c["turn"] = (args[0], self.now + int(args[1]))
            return str(c["state"])
        if verb in ("save", "release") and (turn is None or turn[0] != args[0]):
            raise EngineError(["docker", "exec"], 4, "", "turn lost")
        if verb == "save":
            c["state"] = data.decode()
        elif verb == "release":
            c["turn"], c["used"] = None, self.now
        elif verb == "expire":
            if not free:
                return "busy\n"
            c["used"] = self.now if c["used"] is None else c["used"]
            if self.now - c["used"] > int(args[0]):
                c["turn"] = ("expire", self.now + 60)
                return "expired\n"
            return "fresh\n"
        elif verb == "status":
            return f"{0 if free else 1} {c['used'] or self.now} {self.now}\n{c['state']}"
        return ""


def _sessions(engine: Engine, server_id: str = "server-1", fleet: str | None = None) -> Sessions:
    return Sessions(engine, server_id, idle_s=3600, fleet=fleet)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def sessions(engine: Engine) -> Any:
    made = _sessions(engine)
    yield made
    made.close()


PYTHON = RunRequest(runtimes.get("python"), code=b"1")


def test_a_session_is_compared_with_the_image_its_first_request_named_not_the_one_built_for_it(
    sessions: Sessions,
) -> None:
    built = PYTHON._replace(image="isol8-auto-python:abc")  # what --install made of the asked image
    first = sessions.get_or_create("s", built, asked_image="my-image")
    assert first.image == "isol8-auto-python:abc"
    assert sessions.get_or_create("s", PYTHON, asked_image="my-image") is first
    assert sessions.get_or_create("s", PYTHON, asked_image=None) is first
    with pytest.raises(RequestError, match="runs my-image, not other-image") as caught:
        sessions.get_or_create("s", PYTHON, asked_image="other-image")
    assert caught.value.status == 409
    with pytest.raises(RequestError, match="runs python, not node"):
        sessions.get_or_create("s", RunRequest(runtimes.get("node"), code=b"1"), asked_image=None)


def test_a_session_that_named_no_image_refuses_a_request_that_names_one(sessions: Sessions) -> None:
    sessions.get_or_create("s", PYTHON, asked_image=None)
    with pytest.raises(RequestError, match="runs isol8:python, not my-image"):
        sessions.get_or_create("s", PYTHON, asked_image="my-image")


def test_another_replica_of_the_fleet_finds_the_session_by_its_labels(engine: Engine) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    python = runtimes.get("python")
    run = PYTHON._replace(image="isol8-auto-python:abc", keep_background=True)
    made = one.get_or_create("s", run, asked_image="asked", provided=parse_specs(python, ["six==1.17.0"]))
    found = two.find("s")
    assert found is not None and found is not made
    assert (found.container, found.image, found.asked_image, found.keep_background, found.policy) == (
        made.container,
        "isol8-auto-python:abc",
        "asked",
        True,
        made.policy,
    )
    assert [s.text for s in found.provided] == ["six==1.17.0"]
    labels = engine.containers[made.container]["labels"]
    assert labels[L.FLEET] == "f" and L.SERVER_ID not in labels  # no replica's: none takes it away
    assert engine.started == [(container_name("f", "s"), True)]  # outlives the replica that made it
    assert _sessions(engine, "r3", fleet="other").find("s") is None
    assert _sessions(engine, "r4").find("s") is None  # a server of no fleet is a fleet of its own


def test_a_server_without_a_fleet_keeps_its_sessions_to_itself(engine: Engine, sessions: Sessions) -> None:
    made = sessions.get_or_create("s", PYTHON, asked_image=None)
    labels = engine.containers[made.container]["labels"]
    assert labels[L.SERVER_ID] == labels[L.FLEET] == "server-1"  # removed with its server
    assert engine.started == [(container_name("server-1", "s"), False)]  # and if it dies
    assert _sessions(engine, "server-2").find("s") is None


def test_two_replicas_creating_one_session_at_once_share_the_winners(engine: Engine) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    made = one.get_or_create("s", PYTHON, asked_image=None)
    assert two._create("s", PYTHON, None, ()).container == made.container  # lost the race in the engine
    assert len(engine.containers) == 1


def test_packages_installed_through_one_replica_are_known_to_the_other(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    python = runtimes.get("python")
    tree = type("Tree", (), {"env": {"PYTHONPATH": "/sandbox/.isol8-packages"}})()
    monkeypatch.setattr("isol8.core.installs.install_tree", lambda *a, **k: tree)
    monkeypatch.setattr("isol8.core.installs.replace_in", lambda *a, **k: None)
    with one.held("s", PYTHON, None) as session:
        one.add_packages(session, PYTHON, parse_specs(python, ["six==1.17.0"]), PackageSettings())
        one.finish(session, ended=False)
    with two.held("s", PYTHON, None) as seen:
        assert [s.text for s in seen.provided] == ["six==1.17.0"]
        assert seen.env == {"PYTHONPATH": "/sandbox/.isol8-packages"}
    assert two.listing()[0]["packages"] == ["six==1.17.0"]


def test_a_turn_held_on_another_replica_is_busy_and_a_finished_one_is_free(engine: Engine) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    two.lease_s = 0.3  # how long it waits for a turn
    with one.held("s", PYTHON, None) as session:
        assert two.listing()[0]["busy"] is True
        with pytest.raises(RequestError, match="busy") as caught, two.held("s", PYTHON, None):
            pass
        assert caught.value.status == 409
        one.finish(session, ended=False)
    assert two.listing()[0]["busy"] is False
    with two.held("s", PYTHON, None) as again:
        assert again.container == session.container


def test_a_session_ended_elsewhere_is_made_anew_for_an_execution_and_is_a_404_for_a_file(engine: Engine) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    old = one.get_or_create("s", PYTHON, asked_image=None)
    two.find("s")
    assert one.remove("s")
    with pytest.raises(RequestError) as caught:
        two.put_file("s", "/sandbox/a", b"x")  # it knew the session, which has ended since
    assert caught.value.status == 404
    two.find("s")
    with two.held("s", PYTHON, None) as new:
        assert new.container != old.container and new.container in engine.containers


def test_removing_by_identity_spares_a_newer_session_of_the_same_id(engine: Engine, sessions: Sessions) -> None:
    old = sessions.get_or_create("s", PYTHON, asked_image=None)
    assert sessions.remove("s")
    new = sessions.get_or_create("s", PYTHON, asked_image=None)
    sessions.remove("s", only=old)  # a late failure of the old one's request
    assert sessions.find("s") is new and new.container in engine.containers


def test_expiry_counts_any_replicas_use_and_spares_a_turn_in_progress(engine: Engine) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    one.idle_s = two.idle_s = 10
    for name in ("busy", "used", "idle"):
        with one.held(name, PYTHON, None) as session:
            one.finish(session, ended=False)
    idle = session.container
    one._cache.clear()  # as if r1 had used none of them lately: their records decide
    engine.now += 8
    with two.held("used", PYTHON, None) as session:
        two.finish(session, ended=False)  # used through the other replica
    engine.now += 5
    held = threading.Event()

    def busy() -> None:
        with two.held("busy", PYTHON, None):
            held.set()
            time.sleep(0.3)

    worker = threading.Thread(target=busy)
    worker.start()
    assert held.wait(5)
    removed = one.expire_idle()
    worker.join(5)
    assert removed == [idle]
    assert {c["labels"][L.SESSION_ID] for c in engine.containers.values()} == {"busy", "used"}


def test_a_session_whose_programs_took_every_pid_ends_at_its_next_turn_instead_of_failing_forever(
    engine: Engine, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions_module, "OUT_OF_REACH_S", 0.2)
    with sessions.held("s", PYTHON, None) as session:
        sessions.finish(session, ended=False)
    engine.crowded.add(session.container)
    with pytest.raises(RequestError, match="ended: its record is out of reach") as caught:
        with sessions.held("s", PYTHON, None):
            pass
    assert caught.value.status == 500 and engine.containers == {}
    with sessions.held("s", PYTHON, None) as anew:  # the id starts afresh
        assert anew.container in engine.containers


def test_claims_killed_by_another_turns_sweep_are_tried_again(engine: Engine, sessions: Sessions) -> None:
    with sessions.held("s", PYTHON, None) as session:
        sessions.finish(session, ended=False)
    engine.killed = 5  # more than three, within less than OUT_OF_REACH_S
    with sessions.held("s", PYTHON, None) as again:
        assert again.container == session.container


def test_a_session_out_of_reach_for_longer_than_it_may_idle_expires(engine: Engine) -> None:
    one, two = _sessions(engine, "r1", fleet="f"), _sessions(engine, "r2", fleet="f")
    with one.held("s", PYTHON, None) as session:
        one.finish(session, ended=False)
    engine.crowded.add(session.container)
    two.idle_s = 0.2
    assert two.expire_idle() == []  # out of reach for a moment: maybe busy forking, not ended
    time.sleep(0.3)
    assert two.expire_idle() == [session.container] and engine.containers == {}


def test_a_package_asked_for_without_a_version_is_not_lacking_in_a_session_that_has_any_version(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what the session lacks is installed; nothing here reaches an installer."""
    python = runtimes.get("python")
    session = sessions.get_or_create("s", PYTHON, asked_image=None, provided=parse_specs(python, ["six==1.17.0"]))
    asked: list[tuple[str, ...]] = []
    monkeypatch.setattr("isol8.core.installs.install_tree", lambda *a, **k: asked.append(a[3]) or 1 / 0)
    sessions.add_packages(session, PYTHON, parse_specs(python, ["six"]), PackageSettings())
    sessions.add_packages(session, PYTHON, parse_specs(python, ["six==1.17.0"]), PackageSettings())
    assert asked == []
    with pytest.raises(ZeroDivisionError):  # another version is lacking
        sessions.add_packages(session, PYTHON, parse_specs(python, ["six==1.16.0"]), PackageSettings())
    assert [s.text for s in asked[0]] == ["six==1.16.0"]


def test_an_unreadable_record_counts_as_no_packages(engine: Engine, sessions: Sessions) -> None:
    made = sessions.get_or_create("s", PYTHON, asked_image=None, provided=parse_specs(PYTHON.runtime, ["six"]))
    engine.containers[made.container]["state"] = '{"installed": 5, "env": []}'
    with sessions.held("s", PYTHON, None) as session:
        assert session.installed == () and session.env == {} and [s.text for s in session.provided] == ["six"]
