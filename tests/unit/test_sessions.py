"""Server sessions' bookkeeping (isol8/frontends/server/sessions.py) over a backend that only records calls."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from isol8 import runtimes
from isol8.config import PackageSettings
from isol8.core.runner import RunRequest
from isol8.ecosystems import parse_specs
from isol8.errors import EngineError, RequestError
from isol8.frontends.server.sessions import Sessions


class RecordingBackend:
    """What Sessions asks of a backend, written down; containers start and go at once."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.removed: list[str] = []

    def local_image(self, ref: str) -> str:
        return ref

    def start_standby(self, spec: Any) -> None:
        self.started.append(spec.name)

    def remove_containers(self, ids: list[str]) -> None:
        self.removed.extend(ids)


@pytest.fixture
def sessions() -> Any:
    made = Sessions(RecordingBackend(), "server-1", idle_s=3600)  # type: ignore[arg-type]
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


def test_a_session_that_named_no_image_refuses_a_request_that_names_one(sessions: Sessions) -> None:
    sessions.get_or_create("s", PYTHON, asked_image=None)
    with pytest.raises(RequestError, match="runs isol8:python, not my-image"):
        sessions.get_or_create("s", PYTHON, asked_image="my-image")


def test_removing_by_identity_spares_a_newer_session_of_the_same_id(sessions: Sessions) -> None:
    old = sessions.get_or_create("s", PYTHON, asked_image=None)
    assert sessions.remove("s")
    new = sessions.get_or_create("s", PYTHON, asked_image=None)
    assert not sessions.remove("s", only=old)  # a late failure of the old one's request
    assert sessions.find("s") is new
    assert sessions.remove("s", only=new)
    assert sessions.backend.removed == [old.container, new.container]  # type: ignore[attr-defined]


class SlowStart(RecordingBackend):
    """A container start that waits for the test's word, and fails the first time if told to."""

    def __init__(self, fail_first: bool = False) -> None:
        super().__init__()
        self.go, self.fail_first = threading.Event(), fail_first

    def start_standby(self, spec: Any) -> None:
        assert self.go.wait(10)
        if self.fail_first and not self.started:
            self.started.append("failed")
            raise EngineError(["docker", "run"], 125, "", "no room")
        super().start_standby(spec)


def _waiter(sessions: Sessions, got: list[str]) -> threading.Thread:
    """A second request for session "s", started: it writes down the container it ran in."""

    def second() -> None:
        with sessions.held("s", PYTHON, None) as session:
            got.append(session.container)

    waiter = threading.Thread(target=second)
    waiter.start()
    return waiter


def test_a_session_is_busy_until_its_container_has_started_and_a_second_request_waits(sessions: Sessions) -> None:
    sessions.backend = backend = SlowStart()
    first = threading.Thread(target=lambda: sessions.get_or_create("s", PYTHON, asked_image=None))
    first.start()
    while sessions.find("s") is None:
        time.sleep(0.01)
    assert sessions.listing()[0]["busy"] is True
    got: list[str] = []
    waiter = _waiter(sessions, got)
    time.sleep(0.2)
    assert got == []  # it has not run in a container that is not there yet
    backend.go.set()
    first.join(5), waiter.join(5)
    assert got == backend.started


def test_a_request_that_waited_for_a_session_whose_start_failed_gets_a_new_one(sessions: Sessions) -> None:
    sessions.backend = backend = SlowStart(fail_first=True)
    failed: list[Exception] = []

    def first() -> None:
        try:
            sessions.get_or_create("s", PYTHON, asked_image=None)
        except RequestError as exc:
            failed.append(exc)

    starter = threading.Thread(target=first)
    starter.start()
    while sessions.find("s") is None:
        time.sleep(0.01)
    got: list[str] = []
    waiter = _waiter(sessions, got)
    time.sleep(0.1)
    backend.go.set()
    starter.join(5), waiter.join(5)
    assert len(failed) == 1 and backend.started[0] == "failed"
    assert got == backend.started[1:] and len(got) == 1


def test_expiry_spares_a_busy_session_and_one_a_request_has_just_found(sessions: Sessions) -> None:
    sessions.idle_s = 0.05
    busy = sessions.get_or_create("busy", PYTHON, asked_image=None)
    found = sessions.get_or_create("found", PYTHON, asked_image=None)
    idle = sessions.get_or_create("idle", PYTHON, asked_image=None)
    time.sleep(0.1)
    with busy.lock:
        assert sessions.get("found") is found  # a request on its way to the session's lock
        assert sessions._expire() == [idle]
    assert sessions.find("busy") is busy and sessions.find("found") is found and sessions.find("idle") is None


def test_a_file_request_that_waited_for_a_session_that_ended_is_a_404(sessions: Sessions) -> None:
    session = sessions.get_or_create("s", PYTHON, asked_image=None)
    answer: list[int] = []

    def put() -> None:
        try:
            sessions.put_file("s", "/sandbox/a", b"x")
        except RequestError as exc:
            answer.append(exc.status)

    with session.lock:  # an execution, which times out and ends the session
        writer = threading.Thread(target=put)
        writer.start()
        time.sleep(0.1)
        sessions.remove("s", only=session)
    writer.join(5)
    assert answer == [404]


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
