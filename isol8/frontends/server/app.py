"""`isol8 serve`'s HTTP routes (Starlette on uvicorn, the optional extra isol8[server]) and its lifetime.

Routes: GET /health (no auth), POST /execute, POST /execute/stream (Server-Sent Events),
POST /cleanup, and sessions' GET /sessions, DELETE /session/ID, POST and GET /file.
What a request may ask is policy.py's; how it runs, executions.py's.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from isol8 import __version__
from isol8.errors import Isol8Error, RequestError
from isol8.frontends.server import executions, session
from isol8.frontends.server.state import ServerState, busy

Handler = Callable[[Request], Awaitable[Response]]


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured signal once it has stopped, which would end the process before
    serve()'s cleanup: isol8 handles the signals itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _check_auth(request: Request) -> ServerState:
    """The server's state, once the request's key checks out (401 without one, 403 with a wrong one)."""
    state: ServerState = request.app.state.isol8
    if state.api_key is None:
        return state
    header = request.headers.get("authorization")
    if not header:
        raise RequestError(401, "Missing Authorization header")
    token = header[7:].strip() if header[:7].lower() == "bearer " else header.strip()
    if not hmac.compare_digest(token.encode(), state.api_key.encode()):
        raise RequestError(403, "Invalid API key")
    return state


async def _read_json(request: Request, state: ServerState) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > state.settings.max_body_bytes:
        raise RequestError(413, f"request body over {state.settings.max_body_bytes} bytes")
    data = b""
    async for part in request.stream():
        data += part
        if len(data) > state.settings.max_body_bytes:
            raise RequestError(413, f"request body over {state.settings.max_body_bytes} bytes")
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        raise RequestError(400, "request body is not JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    return body


def _errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except Isol8Error as exc:
            return JSONResponse({"error": str(exc)}, status_code=500)

    return wrapped


async def health(request: Request) -> Response:
    """Liveness, and with ?ready=1 readiness for a load balancer: 503 once the server is draining."""
    state: ServerState = request.app.state.isol8
    draining = state.draining.is_set()
    body = {"status": "draining" if draining else "ok", "version": __version__, "ready": not draining}
    if state.settings.fleet is not None:
        body["fleet"] = state.settings.fleet
    ready_asked = request.query_params.get("ready") not in (None, "", "0", "false")
    return JSONResponse(body, status_code=503 if draining and ready_asked else 200)


async def execute(request: Request) -> Response:
    state = _check_auth(request)
    body = await _read_json(request, state)
    return JSONResponse(await run_in_threadpool(executions.execute, state, body))


async def execute_stream(request: Request) -> Response:
    state = _check_auth(request)
    body = await _read_json(request, state)
    if not await run_in_threadpool(state.slots.acquire, True, state.settings.queue_timeout_s):
        raise busy(state)
    return StreamingResponse(executions.stream(state, body), media_type="text/event-stream")


async def list_sessions(request: Request) -> Response:
    state = _check_auth(request)
    return JSONResponse({"sessions": await run_in_threadpool(state.sessions.listing)})


async def delete_session(request: Request) -> Response:
    state = _check_auth(request)
    session_id = session.check_id(request.path_params["session_id"])
    removed = await run_in_threadpool(state.sessions.remove, session_id)
    return JSONResponse({"ok": True, "removed": removed})


async def post_file(request: Request) -> Response:
    state = _check_auth(request)
    body = await _read_json(request, state)
    session_id = session.check_id(body.get("sessionId"))
    path = session.sandbox_path(body.get("path"))
    try:
        data = base64.b64decode(str(body.get("content", "")), validate=True)
    except ValueError:
        raise RequestError(400, "content must be base64") from None
    await run_in_threadpool(state.sessions.put_file, session_id, path, data)
    return JSONResponse({"ok": True})


async def read_file(request: Request) -> Response:
    state = _check_auth(request)
    session_id = session.check_id(request.query_params.get("sessionId"))
    path = session.sandbox_path(request.query_params.get("path"))
    data = await run_in_threadpool(state.sessions.get_file, session_id, path, state.settings.max_body_bytes)
    return JSONResponse({"content": base64.b64encode(data).decode()})


async def cleanup(request: Request) -> Response:
    state = _check_auth(request)
    removed = await run_in_threadpool(state.remove_containers)
    return JSONResponse({"ok": True, "containers": {"removed": removed}})


def create_app(state: ServerState) -> Starlette:
    app = Starlette(
        routes=[
            Route("/health", _errors(health), methods=["GET"]),
            Route("/execute", _errors(execute), methods=["POST"]),
            Route("/execute/stream", _errors(execute_stream), methods=["POST"]),
            Route("/cleanup", _errors(cleanup), methods=["POST"]),
            Route("/sessions", _errors(list_sessions), methods=["GET"]),
            Route("/session/{session_id}", _errors(delete_session), methods=["DELETE"]),
            Route("/file", _errors(post_file), methods=["POST"]),
            Route("/file", _errors(read_file), methods=["GET"]),
        ]
    )
    app.state.isol8 = state
    return app


def serve(
    state: ServerState, host: str, port: int, *, grace_s: float = 10.0, ready: Callable[[], None] = lambda: None
) -> None:
    """Listen until SIGINT/SIGTERM; then drain: /health?ready=1 answers 503 while requests are still
    served for server.drainMs (a balancer's health checks take it out), then stop accepting, let
    in-flight executions finish for up to grace_s, kill what still runs, and remove this server's
    containers (found by label; a fleet's sessions stay for the other replicas). Images stay."""
    import signal

    import uvicorn

    config = uvicorn.Config(
        create_app(state), host=host, port=port, log_level="warning", timeout_graceful_shutdown=int(grace_s) + 5
    )
    server = _Server(config)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if stopping.is_set():  # a second signal: stop listening and end what still runs, now
            server.should_exit = True
            threading.Thread(target=state.abandon, daemon=True).start()
            return
        stopping.set()
        state.draining.set()  # balancers see /health?ready=1 fail while requests are still served
        closer = threading.Timer(state.settings.drain_s, lambda: setattr(server, "should_exit", True))
        closer.daemon = True
        closer.start()
        killer = threading.Timer(state.settings.drain_s + grace_s, state.abandon)
        killer.daemon = True
        killer.start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        state.warm_pools()
        ready()
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        state.close()
