"""Server sessions' bookkeeping (isol8/frontends/server/sessions.py) over a backend that only records calls."""

from __future__ import annotations

from typing import Any

import pytest

from isol8 import runtimes
from isol8.core.runner import RunRequest
from isol8.errors import RequestError
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
