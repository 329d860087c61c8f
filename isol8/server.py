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
import tempfile
import threading
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

from isol8 import __version__, runtimes
from isol8.config import Config, parse_size
from isol8.custom import RegistrySettings
from isol8.engine import Engine
from isol8.errors import Isol8Error, UsageError
from isol8.pool import WarmPool
from isol8.provision import provide
from isol8.runner import Execution, RunRequest
from isol8.sandbox import SandboxPolicy

SERVER_LABEL = "org.isol8.server.id"


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
        self.queue_timeout = float(settings.get("queueTimeoutMs", 30_000)) / 1000
        self.max_body = int(settings.get("maxBodyBytes", 10 * 1024 * 1024))
        self.slots = threading.BoundedSemaphore(int(self.config.data["maxConcurrent"]))
        self.pool = WarmPool(
            self.engine, default_policy(self.config), int(settings.get("poolSize", 2)), {SERVER_LABEL: self.server_id}
        )

    def warm_pools(self) -> None:
        """A pool per runtime base image: executions with the default limits exec into one."""
        for runtime in runtimes.NAMES:
            self.pool.warm(self.engine.dialect.local_image(runtimes.get(runtime).image))


def default_policy(config: Config) -> SandboxPolicy:
    """The sandbox a request gets when it asks for no limits of its own: the config's defaults."""
    d = config.defaults
    return SandboxPolicy(
        memory=str(d["memoryLimit"]),
        cpus=float(d["cpuLimit"]),
        pids_limit=int(d["pidsLimit"]),
        network=str(d["network"]),
        sandbox_size=str(d["sandboxSize"]),
        tmp_size=str(d["tmpSize"]),
        seccomp_profile=config.seccomp_profile,
    )


def _ceiling(name: str, value: object, ceiling: object, parse: Any = float) -> None:
    try:
        asked, limit = parse(value), parse(ceiling)
    except (TypeError, ValueError):
        raise HTTPError(400, f"{name}: not a valid value: {value!r}") from None
    if asked > limit:
        raise HTTPError(403, f"{name} {value} exceeds the server's limit {ceiling}")


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
    timeout_ms = req.get("timeoutMs", opts.get("timeoutMs", defaults["timeoutMs"]))
    _ceiling("timeoutMs", timeout_ms, defaults["timeoutMs"])
    limits = {
        "memoryLimit": (defaults["memoryLimit"], parse_size),
        "sandboxSize": (defaults["sandboxSize"], parse_size),
        "tmpSize": (defaults["tmpSize"], parse_size),
        "cpuLimit": (defaults["cpuLimit"], float),
        "pidsLimit": (defaults["pidsLimit"], int),
        "maxOutputSize": (defaults["maxOutputSize"], int),
    }
    chosen = {}
    for name, (ceiling, parse) in limits.items():
        value = opts.get(name, ceiling)
        _ceiling(name, value, ceiling, parse)
        chosen[name] = value
    network = opts.get("network", defaults["network"])
    if network not in ("none", "host"):
        raise HTTPError(400, f"network must be none or host, not {network!r}")
    if network == "host" and not state.allow_host_network:
        raise HTTPError(403, "network host is not allowed by this server's policy")
    image = opts.get("image")
    if image is not None and not state.allow_images:
        raise HTTPError(403, "choosing an image is not allowed by this server's policy")
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
            timeout_ms=int(timeout_ms),
            max_output=int(chosen["maxOutputSize"]),
            policy=dataclasses.replace(
                default_policy(state.config),
                memory=str(chosen["memoryLimit"]),
                cpus=float(chosen["cpuLimit"]),
                pids_limit=int(chosen["pidsLimit"]),
                network=network,
                sandbox_size=str(chosen["sandboxSize"]),
                tmp_size=str(chosen["tmpSize"]),
            ),
            labels={SERVER_LABEL: state.server_id},
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
    with _Slot(state), tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
        run = _prepare(state, body, Path(tmp))
        with _execution(state, run) as execution:
            for _ in execution:
                pass
        assert execution.result is not None
        return {**execution.result.to_json(), "executionId": execution.name}


def _event(kind: str, data: str) -> bytes:
    return f"data: {json.dumps({'type': kind, 'data': data})}\n\n".encode()


def stream_blocking(state: ServerState, body: Mapping[str, Any]) -> Iterator[bytes]:
    """SSE frames; the caller has taken the slot (released here when the stream ends)."""
    try:
        with tempfile.TemporaryDirectory(prefix="isol8-files-") as tmp:
            try:
                run = _prepare(state, body, Path(tmp))
                with _execution(state, run) as execution:
                    for chunk in execution:
                        yield _event(chunk.stream, chunk.data.decode("utf-8", "replace"))
            except (HTTPError, Isol8Error) as exc:
                yield _event("error", getattr(exc, "message", str(exc)))
                yield _event("exit", "125")
                return
            assert execution.result is not None
            if execution.result.timed_out:
                yield _event("error", "execution timed out")
            yield _event("exit", str(execution.result.exit_code))
    finally:
        state.slots.release()


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
        state.pool.close()
        remove_server_containers(state)
