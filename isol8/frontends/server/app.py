"""`isol8 serve`: an HTTP API over isol8 runs (Starlette on uvicorn, the optional extra isol8[server]).

Routes: GET /health (no auth), POST /execute, POST /execute/stream (Server-Sent Events),
POST /cleanup. Requests may tighten the config's limits, never loosen them.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hmac
import json
import os
import posixpath
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from isol8 import __version__, runtimes, units
from isol8 import labels as L
from isol8.backends.engine import reaper
from isol8.backends.engine.backend import Engine
from isol8.config import Config
from isol8.core.custom import RegistrySettings
from isol8.core.provision import provide
from isol8.core.runner import Chunk, Execution, RunRequest, RunResult
from isol8.core.sandbox import SANDBOX_USER, SandboxPolicy, standby_argv, sweep_argv
from isol8.errors import Isol8Error, UsageError
from isol8.frontends.server.pool import WarmPool
from isol8.log import get_logger
from isol8.process import run_process, run_process_bytes

SERVER_LABEL = "org.isol8.server.id"
log = get_logger(__name__)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServerState:
    engine: Engine
    config: Config
    api_key: str | None
    registry: RegistrySettings
    server_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        settings = self.config.data.get("server") or {}
        self.allow_host_network = bool(settings.get("allowHostNetwork", False))
        self.allow_images = bool(settings.get("allowImages", False))
        self.queue_timeout = units.duration_ms(settings.get("queueTimeoutMs", 30_000)) / 1000
        self.max_body = int(settings.get("maxBodyBytes", 10 * 1024 * 1024))
        self.slots = threading.BoundedSemaphore(int(self.config.data["maxConcurrent"]))
        self.pool = WarmPool(
            self.engine, default_policy(self.config), int(settings.get("poolSize", 2)), {SERVER_LABEL: self.server_id}
        )
        self.sessions = Sessions(self, units.duration_ms(settings.get("sessionIdleMs", 600_000)) / 1000)

    def warm_pools(self) -> None:
        """A pool per runtime base image: executions with the default limits exec into one."""
        for runtime in runtimes.NAMES:
            self.pool.warm(self.engine.dialect.local_image(runtimes.get(runtime).image))


def default_policy(config: Config) -> SandboxPolicy:
    """The sandbox a request gets when it asks for no limits of its own: the config's defaults."""
    d = config.defaults
    return SandboxPolicy(
        memory=units.memory(d["memoryLimit"]),
        cpus=units.cpus(d["cpuLimit"]),
        pids_limit=units.pids(d["pidsLimit"]),
        network=str(d["network"]),
        sandbox_size=units.tmpfs_size(d["sandboxSize"]),
        tmp_size=units.tmpfs_size(d["tmpSize"]),
        shm_size=units.tmpfs_size(d["shmSize"]),
        seccomp_profile=config.seccomp_profile,
    )


# What a request may set, each parsed by isol8.units and at most the config's value of the same key.
LIMITS: dict[str, Callable[[object], int | float]] = {
    "timeoutMs": units.duration_ms,
    "memoryLimit": units.memory,
    "sandboxSize": units.tmpfs_size,
    "tmpSize": units.tmpfs_size,
    "shmSize": units.tmpfs_size,
    "cpuLimit": units.cpus,
    "pidsLimit": units.pids,
    "maxOutputSize": units.output_size,
}


def request_limits(asked: Mapping[str, object], ceilings: Mapping[str, object]) -> dict[str, int | float]:
    """Each limit parsed (400 if invalid), compared with its parsed ceiling (403 if above); absent ones are
    the ceiling itself."""
    chosen: dict[str, int | float] = {}
    for name, parse in LIMITS.items():
        ceiling = parse(ceilings[name])
        if name not in asked:
            chosen[name] = ceiling
            continue
        try:
            value = parse(asked[name])
        except units.InvalidLimit as exc:
            raise HTTPError(400, f"{name}: {exc}") from None
        if value > ceiling:
            raise HTTPError(403, f"{name} {asked[name]} exceeds the server's limit {ceilings[name]}")
        chosen[name] = value
    return chosen


def _write_files(files: Mapping[str, object], into: Path) -> None:
    for raw, content in files.items():
        rel = Path(str(raw).removeprefix("/sandbox/").lstrip("/"))
        if not rel.parts or ".." in rel.parts:
            raise HTTPError(400, f"files: path must be inside /sandbox: {raw!r}")
        if isinstance(content, dict) and isinstance(content.get("base64"), str):
            data = base64.b64decode(content["base64"], validate=True)
        elif isinstance(content, str):
            data = content.encode()
        else:
            raise HTTPError(400, f'files: {raw!r}: content must be a string or {{"base64": ...}}')
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def build_run(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> tuple[RunRequest, list[str]]:
    """Wire format -> RunRequest, enforcing the server's policy (HTTPError 400/403 otherwise)."""
    req = body.get("request")
    opts = body.get("options") or {}
    if not isinstance(req, dict) or not isinstance(opts, dict):
        raise HTTPError(400, "expected {request: {...}, options?: {...}}")
    defaults = state.config.defaults
    code, cmd = req.get("code"), req.get("cmd")
    if (code is None) == (cmd is None) or not isinstance(code or cmd, str):
        raise HTTPError(400, "request must include exactly one of: code, cmd (a string)")
    asked = {name: opts[name] for name in LIMITS if name in opts}
    if "timeoutMs" in req:
        asked["timeoutMs"] = req["timeoutMs"]
    chosen = request_limits(asked, defaults)
    network = opts.get("network", defaults["network"])
    if network not in ("none", "host"):
        raise HTTPError(400, f"network must be none or host, not {network!r}")
    if network == "host" and not state.allow_host_network:
        raise HTTPError(403, "network host is not allowed by this server's policy")
    image = opts.get("image")
    if image is not None and not state.allow_images:
        raise HTTPError(403, "choosing an image is not allowed by this server's policy")
    keep_background = opts.get("keepBackground", False)
    if not isinstance(keep_background, bool):
        raise HTTPError(400, "keepBackground must be true or false")
    if keep_background and body.get("sessionId") is None:
        raise HTTPError(400, "keepBackground only applies to a session (give a sessionId)")
    for forbidden in ("seccomp", "seccompProfile", "security", "persist", "readonlyRootFs"):
        if forbidden in opts:
            raise HTTPError(403, f"option {forbidden} is not allowed by this server's policy")
    files = req.get("files") or {}
    if not isinstance(files, dict):
        raise HTTPError(400, "files must be an object of path -> content")
    _write_files(files, files_dir)
    stdin = req.get("stdin")
    install = req.get("installPackages") or []
    if not isinstance(install, list) or not all(isinstance(p, str) for p in install):
        raise HTTPError(400, "installPackages must be a list of strings")
    try:
        run = RunRequest(
            runtime=runtimes.get(str(req.get("runtime") or "python")),
            code=code.encode() if isinstance(code, str) else None,
            cmd=cmd if isinstance(cmd, str) else None,
            files_dir=files_dir if files else None,
            stdin=[stdin.encode()] if isinstance(stdin, str) else [],
            env={str(k): str(v) for k, v in (req.get("env") or {}).items()},
            secrets={str(k): str(v) for k, v in (opts.get("secrets") or req.get("secrets") or {}).items()},
            workdir=str(req.get("workdir") or "/sandbox"),
            image=image,
            timeout_ms=int(chosen["timeoutMs"]),
            max_output=int(chosen["maxOutputSize"]),
            policy=dataclasses.replace(
                default_policy(state.config),
                memory=int(chosen["memoryLimit"]),
                cpus=float(chosen["cpuLimit"]),
                pids_limit=int(chosen["pidsLimit"]),
                network=network,
                sandbox_size=int(chosen["sandboxSize"]),
                tmp_size=int(chosen["tmpSize"]),
                shm_size=int(chosen["shmSize"]),
            ),
            labels={SERVER_LABEL: state.server_id},
            keep_background=keep_background,
        )
    except (UsageError, ValueError) as exc:
        raise HTTPError(400, str(exc)) from None
    return run, install


class _Slot:
    """A place among maxConcurrent executions, waited for at most the queue timeout (else 429)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def __enter__(self) -> None:
        if not self.state.slots.acquire(timeout=self.state.queue_timeout):
            raise HTTPError(429, f"busy: no free execution slot within {self.state.queue_timeout:g}s")

    def __exit__(self, *exc: object) -> None:
        self.state.slots.release()


def _prepare(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> RunRequest:
    run, install = build_run(state, body, files_dir)
    if install:
        try:
            run = provide(state.engine, run, install, base_images=state.config.base_images, registry=state.registry)
        except UsageError as exc:
            raise HTTPError(400, str(exc)) from None
    return run


@contextlib.contextmanager
def _execution(state: ServerState, run: RunRequest) -> Iterator[Execution]:
    """An Execution in a warm container when the pool has one for this image and sandbox, else cold."""
    image = run.image or state.engine.dialect.local_image(run.runtime.image)
    container = state.pool.take(image) if state.pool.serves(image, run.policy) else None
    try:
        yield Execution(state.engine, run, container=container)
    finally:
        if container is not None:
            state.pool.release(container)


def execute_blocking(state: ServerState, body: Mapping[str, Any]) -> dict[str, Any]:
    if body.get("sessionId") is not None:
        with _Slot(state), tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
            *_, result = session_execute(state, body, Path(tmp))
            assert isinstance(result, RunResult)
            return {**result.to_json(), "executionId": result.container, "sessionId": body["sessionId"]}
    with _Slot(state), tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
        run = _prepare(state, body, Path(tmp))
        with _execution(state, run) as execution:
            for _ in execution:
                pass
        assert execution.result is not None
        return {**execution.result.to_json(), "executionId": execution.name}


def _fresh(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> Iterator[Chunk | RunResult]:
    run = _prepare(state, body, files_dir)
    with _execution(state, run) as execution:
        yield from execution
    assert execution.result is not None
    yield execution.result


def _event(kind: str, data: str) -> bytes:
    return f"data: {json.dumps({'type': kind, 'data': data})}\n\n".encode()


def stream_blocking(state: ServerState, body: Mapping[str, Any]) -> Iterator[bytes]:
    """SSE frames; the caller has taken the slot (released here when the stream ends)."""
    try:
        with tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
            result: RunResult | None = None
            try:
                if body.get("sessionId") is not None:
                    items: Iterator[Chunk | RunResult] = session_execute(state, body, Path(tmp))
                else:
                    items = _fresh(state, body, Path(tmp))
                for item in items:
                    if isinstance(item, Chunk):
                        yield _event(item.stream, item.data.decode("utf-8", "replace"))
                    else:
                        result = item
            except (HTTPError, Isol8Error) as exc:
                yield _event("error", getattr(exc, "message", str(exc)))
                yield _event("exit", "125")
                return
            if result is None:
                yield _event("error", "the execution ended without a result")
                yield _event("exit", "125")
            else:
                if result.timed_out:
                    yield _event("error", "execution timed out")
                yield _event("exit", str(result.exit_code))
    finally:
        state.slots.release()


SESSION_LABEL = "org.isol8.session.id"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Session:
    id: str
    container: str
    runtime: str
    keep_background: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "runtime": self.runtime,
            "keepBackground": self.keep_background,
            "busy": self.lock.locked(),
            "idleSeconds": round(time.monotonic() - self.last_used, 1),
        }


class Sessions:
    """Named containers kept between executions: files in /sandbox stay; executions take turns.

    A session starts with the sandbox, image and runtime of its first request; an execution
    that times out ends it (its container is killed). Sessions idle longer than
    server.sessionIdleMs are removed."""

    def __init__(self, state: ServerState, idle_s: float) -> None:
        self.state = state
        self.idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._reap_forever, daemon=True).start()

    @staticmethod
    def check_id(session_id: object) -> str:
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            raise HTTPError(400, "sessionId: 1-64 letters, digits, '.', '_' or '-'")
        return session_id

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise HTTPError(404, f"Session not found: {session_id}")
        return session

    def get_or_create(self, session_id: str, run: RunRequest) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = Session(
                    session_id, f"isol8-session-{os.urandom(8).hex()}", run.runtime.name, run.keep_background
                )
                self._sessions[session_id] = session
                created = True
            else:
                created = False
        if created:
            engine = self.state.engine
            image = run.image or engine.dialect.local_image(run.runtime.image)
            labels = {
                SERVER_LABEL: self.state.server_id,
                SESSION_LABEL: session_id,
                L.MANAGED: "true",
                L.RUN_ID: session.container,
                **reaper.owner_label(),
            }
            reaper.watch(engine.dialect, session.container)
            done = run_process(
                standby_argv(engine.dialect, name=session.container, image=image, policy=run.policy, labels=labels),
                timeout=120,
                cwd=engine.client_cwd(),
            )
            if done.returncode != 0:
                with self._lock:
                    self._sessions.pop(session_id, None)
                engine.remove_containers([session.container])
                reaper.release(session.container)
                raise HTTPError(500, f"could not start the session container: {done.stderr.strip()}")
        elif session.runtime != run.runtime.name:
            raise HTTPError(409, f"session {session_id} runs {session.runtime}, not {run.runtime.name}")
        return session

    def sweep(self, session: Session) -> bool:
        """End every process an execution left in the session's container (a root exec the
        sandbox user cannot stop); False if that failed, and the session must end."""
        try:
            self.state.engine.call(sweep_argv(self.state.engine.dialect, name=session.container), timeout=30)
        except Isol8Error as exc:
            log.warning("could not sweep session %s: %s", session.id, exc)
            return False
        return True

    def remove(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            self.state.engine.remove_containers([session.container])
            reaper.release(session.container)
        return session is not None

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_json() for s in self._sessions.values()]

    def _reap_forever(self) -> None:
        while not self._stop.wait(min(30.0, max(self.idle_s / 4, 0.5))):
            with self._lock:
                idle = [
                    s.id
                    for s in self._sessions.values()
                    if not s.lock.locked() and time.monotonic() - s.last_used > self.idle_s
                ]
            for session_id in idle:
                try:
                    self.remove(session_id)
                except Isol8Error:
                    pass

    def close(self) -> None:
        self._stop.set()


def session_execute(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> Iterator[Chunk | RunResult]:
    """Run one request in its named session (created on first use): chunks, then the result."""
    session_id = Sessions.check_id(body.get("sessionId"))
    run = _prepare(state, body, files_dir)
    session = state.sessions.get_or_create(session_id, run)
    run = dataclasses.replace(run, keep_background=session.keep_background)  # the session's, from its first request
    with session.lock:
        execution = Execution(state.engine, run, container=session.container)
        ended = True
        try:
            yield from execution
            # a timeout kills the container; a wrapper the program disturbed may have left processes
            ended = execution.result is None or execution.result.timed_out or not execution.intact
            if not ended and not session.keep_background:
                ended = not state.sessions.sweep(session)
        finally:
            session.last_used = time.monotonic()
            if ended:  # killed or interrupted: the container is gone, and so is the session
                state.sessions.remove(session_id)
    assert execution.result is not None
    yield execution.result


def _sandbox_path(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise HTTPError(400, "path: a file under /sandbox")
    path = posixpath.normpath(posixpath.join("/sandbox", raw))
    if not path.startswith("/sandbox/"):
        raise HTTPError(400, f"path must be inside /sandbox: {raw!r}")
    return path


def put_file(state: ServerState, session_id: str, path: str, data: bytes) -> None:
    session = state.sessions.get(session_id)
    d = state.engine.dialect
    script = 'mkdir -p -- "$(dirname -- "$1")" && cat >"$1"'
    with session.lock:
        done = run_process(
            [
                d.binary,
                "exec",
                "-i",
                "--user",
                SANDBOX_USER,
                session.container,
                "/bin/bash",
                "-c",
                script,
                "isol8",
                path,
            ],
            input=data,
            timeout=120,
            cwd=state.engine.client_cwd(),
        )
        session.last_used = time.monotonic()
    if done.returncode != 0:
        raise HTTPError(400, f"could not write {path}: {done.stderr.strip()}")


def get_file(state: ServerState, session_id: str, path: str) -> bytes:
    session = state.sessions.get(session_id)
    d = state.engine.dialect
    with session.lock:
        done = run_process_bytes(
            [d.binary, "exec", "--user", SANDBOX_USER, session.container, "/bin/cat", "--", path], timeout=120
        )
        session.last_used = time.monotonic()
    if done[0] != 0:
        raise HTTPError(404, f"cannot read {path}: {done[2].strip()}")
    if len(done[1]) > state.max_body:
        raise HTTPError(413, f"{path} is larger than {state.max_body} bytes")
    return done[1]


def create_app(state: ServerState) -> Starlette:
    def check_auth(request: Request) -> None:
        if state.api_key is None:
            return
        header = request.headers.get("authorization")
        if not header:
            raise HTTPError(401, "Missing Authorization header")
        token = header[7:].strip() if header[:7].lower() == "bearer " else header.strip()
        if not hmac.compare_digest(token.encode(), state.api_key.encode()):
            raise HTTPError(403, "Invalid API key")

    async def read_json(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > state.max_body:
            raise HTTPError(413, f"request body over {state.max_body} bytes")
        data = b""
        async for part in request.stream():
            data += part
            if len(data) > state.max_body:
                raise HTTPError(413, f"request body over {state.max_body} bytes")
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            raise HTTPError(400, "request body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return body

    def errors(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except Isol8Error as exc:
                return JSONResponse({"error": str(exc)}, status_code=500)

        return wrapped

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def execute(request: Request) -> Response:
        check_auth(request)
        body = await read_json(request)
        return JSONResponse(await run_in_threadpool(execute_blocking, state, body))

    async def execute_stream(request: Request) -> Response:
        check_auth(request)
        body = await read_json(request)
        if not await run_in_threadpool(state.slots.acquire, True, state.queue_timeout):
            raise HTTPError(429, f"busy: no free execution slot within {state.queue_timeout:g}s")
        return StreamingResponse(stream_blocking(state, body), media_type="text/event-stream")

    async def sessions(request: Request) -> Response:
        check_auth(request)
        return JSONResponse({"sessions": state.sessions.listing()})

    async def delete_session(request: Request) -> Response:
        check_auth(request)
        session_id = Sessions.check_id(request.path_params["session_id"])
        removed = await run_in_threadpool(state.sessions.remove, session_id)
        return JSONResponse({"ok": True, "removed": removed})

    async def post_file(request: Request) -> Response:
        check_auth(request)
        body = await read_json(request)
        session_id = Sessions.check_id(body.get("sessionId"))
        path = _sandbox_path(body.get("path"))
        try:
            data = base64.b64decode(str(body.get("content", "")), validate=True)
        except ValueError:
            raise HTTPError(400, "content must be base64") from None
        await run_in_threadpool(put_file, state, session_id, path, data)
        return JSONResponse({"ok": True})

    async def read_file(request: Request) -> Response:
        check_auth(request)
        session_id = Sessions.check_id(request.query_params.get("sessionId"))
        path = _sandbox_path(request.query_params.get("path"))
        data = await run_in_threadpool(get_file, state, session_id, path)
        return JSONResponse({"content": base64.b64encode(data).decode()})

    async def cleanup(request: Request) -> Response:
        check_auth(request)
        removed = await run_in_threadpool(remove_server_containers, state)
        return JSONResponse({"ok": True, "containers": {"removed": removed}})

    return Starlette(
        routes=[
            Route("/health", errors(health), methods=["GET"]),
            Route("/execute", errors(execute), methods=["POST"]),
            Route("/execute/stream", errors(execute_stream), methods=["POST"]),
            Route("/cleanup", errors(cleanup), methods=["POST"]),
            Route("/sessions", errors(sessions), methods=["GET"]),
            Route("/session/{session_id}", errors(delete_session), methods=["DELETE"]),
            Route("/file", errors(post_file), methods=["POST"]),
            Route("/file", errors(read_file), methods=["GET"]),
        ]
    )


def remove_server_containers(state: ServerState) -> int:
    ids = state.engine.list_containers({SERVER_LABEL: state.server_id})
    state.engine.remove_containers(ids)
    return len(ids)


def serve(
    state: ServerState, host: str, port: int, *, grace_s: float = 10.0, ready: Callable[[], None] = lambda: None
) -> None:
    """Listen until SIGINT/SIGTERM; then stop accepting, let in-flight executions finish for up to
    grace_s, kill what still runs, and remove this server's containers (found by label). Images stay."""
    import contextlib
    import signal

    import uvicorn

    config = uvicorn.Config(
        create_app(state), host=host, port=port, log_level="warning", timeout_graceful_shutdown=int(grace_s) + 5
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises a captured signal once it has stopped, which would end the process before
    # the cleanup below: isol8 handles the signals itself
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True
        if not stopping.is_set():
            stopping.set()
            killer = threading.Timer(grace_s, remove_server_containers, args=(state,))
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
        state.sessions.close()
        state.pool.close()
        remove_server_containers(state)
        reaper.release_all()
