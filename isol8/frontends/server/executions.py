"""One request's execution: in a session's container, a warm one from the pool, or a fresh one."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from isol8.core.runner import Chunk, Execution, RunRequest, RunResult
from isol8.errors import Isol8Error, OutputFilesError, RequestError
from isol8.frontends import wire
from isol8.frontends.server.policy import build_run, install_specs, prepare, provide_packages
from isol8.frontends.server.session import check_id
from isol8.frontends.server.state import ServerState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.ecosystems import Spec

Item = Chunk | RunResult


@contextlib.contextmanager
def _execution(state: ServerState, run: RunRequest) -> Iterator[Execution]:
    """An Execution in a warm container when the pool has one for this image and sandbox, else cold."""
    image = run.image or state.backend.local_image(run.runtime.image)
    container = state.pool.take(image) if state.pool.serves(image, run.policy) else None
    try:
        yield Execution(state.backend, run, container=container)
    finally:
        if container is not None:
            state.pool.release(container)


def _fresh(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> Iterator[Item]:
    run = prepare(state, body, files_dir)
    with _execution(state, run) as execution:
        yield from execution
    assert execution.result is not None  # an Execution iterated to its end has one
    yield execution.result


def _in_session(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> Iterator[Item]:
    """Run one request in its named session (created on first use): chunks, then the result."""
    session_id = check_id(body.get("sessionId"))
    run, install = build_run(state, body, files_dir)
    specs, asked_image = install_specs(run, install), run.image
    provided: tuple[Spec, ...] = ()
    if specs and state.packages.strategy == "image" and state.sessions.find(session_id) is None:
        run, provided = provide_packages(state, run, install, "image"), specs  # a new session's image has them
    with state.sessions.held(session_id, run, asked_image, provided) as session:
        run = run._replace(keep_background=session.keep_background)  # the session's, from its first request
        # what its container lacks is installed into it (the container never gets a network)
        state.sessions.add_packages(session, run, specs, state.packages)
        run = run._replace(env={**session.env, **run.env})
        execution = Execution(state.backend, run, container=session.container)
        ended = True
        try:
            try:
                yield from execution
            except OutputFilesError:  # the execution ended as usual: the session lives on
                pass
            # a timeout kills the container; a wrapper the program disturbed may have left processes
            ended = execution.result is None or execution.result.timed_out or not execution.intact
        finally:  # killed or interrupted: the container is gone, and so is the session
            state.sessions.finish(session, ended=ended)
    if execution.files_error is not None:
        raise execution.files_error
    assert execution.result is not None
    yield execution.result


def items(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> Iterator[Item]:
    """The output chunks of the request's execution as they come, then its result."""
    if body.get("sessionId") is not None:
        return _in_session(state, body, files_dir)
    return _fresh(state, body, files_dir)


def execute(state: ServerState, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST /execute: the whole result, once the execution has ended."""
    with state.slot(), tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
        try:
            results = [item for item in items(state, body, Path(tmp)) if isinstance(item, RunResult)]
        except OutputFilesError as exc:
            raise RequestError(413, str(exc)) from None
    if not results:
        raise RequestError(500, "the execution ended without a result")
    result = results[-1]
    answer = wire.result_json(result)
    if body.get("sessionId") is not None:
        answer["sessionId"] = body["sessionId"]
    return answer


def stream(state: ServerState, body: Mapping[str, Any]) -> Iterator[bytes]:
    """POST /execute/stream's events; the caller has taken a slot, released here when the stream ends."""
    try:
        if isinstance(body.get("request"), dict) and body["request"].get("outputPaths"):
            yield wire.event("error", "outputPaths: files are returned by POST /execute, not by a stream")
            yield wire.event("exit", "125")
            return
        with tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
            result: RunResult | None = None
            try:
                for item in items(state, body, Path(tmp)):
                    if isinstance(item, Chunk):
                        yield wire.event(item.stream, item.data.decode("utf-8", "replace"))
                    else:
                        result = item
            except Isol8Error as exc:
                yield wire.event("error", getattr(exc, "message", str(exc)))
                yield wire.event("exit", "125")
                return
            if result is None:
                yield wire.event("error", "the execution ended without a result")
                yield wire.event("exit", "125")
                return
            if result.timed_out:
                yield wire.event("error", wire.TIMEOUT_MARKER)
            yield wire.event("exit", str(result.exit_code))
    finally:
        state.slots.release()
