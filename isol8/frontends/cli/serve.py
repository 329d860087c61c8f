"""`isol8 serve` and `isol8 mcp`: check the key and address, build what serving needs, then serve
(HTTP, or MCP on stdio) until a signal or the client's end."""

from __future__ import annotations

import ipaddress
import os

from isol8 import runtimes
from isol8.errors import UsageError
from isol8.frontends.cli.app import App
from isol8.frontends.cli.packages import build_prebuilt_images
from isol8.status import ExitStatus

TYPE_CHECKING = False  # imports for annotations only
if TYPE_CHECKING:
    from isol8.frontends.server.state import ServerState


def _port(value: object) -> int:
    text = value if value is not None else os.environ.get("ISOL8_PORT") or os.environ.get("PORT") or 3000
    try:
        port = int(str(text))
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"not a port number: {text!r}")
    return port


def _api_key(app: App) -> str | None:
    """The key clients must send; serving without one only on loopback, and only when asked to."""
    key = app.args.key or os.environ.get("ISOL8_API_KEY")
    try:
        loopback = app.args.host == "localhost" or ipaddress.ip_address(app.args.host).is_loopback
    except ValueError:
        loopback = False
    if not key and not app.args.insecure_no_auth:
        raise UsageError("an API key is required: --key or ISOL8_API_KEY (--insecure-no-auth serves without one)")
    if not key and not loopback:
        raise UsageError("--insecure-no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost)")
    return key or None


def cmd_serve(app: App) -> int:
    key, port, host = _api_key(app), _port(app.args.port), app.args.host
    try:
        from isol8.frontends.server.app import serve
    except ImportError:
        raise UsageError("isol8 serve needs the server extra: pip install 'isol8[server]'") from None
    state = _prepare(app, key)
    serve(
        state,
        host,
        port,
        ready=lambda: app.progress(f"listening on http://{host}:{port} (server id {state.server_id})"),
    )
    app.progress("stopped; this server's containers were removed")
    return ExitStatus.OK


def cmd_mcp(app: App) -> int:
    try:
        from isol8.frontends.mcp import serve_stdio
    except ImportError:
        raise UsageError("isol8 mcp needs the mcp extra: pip install 'isol8[mcp]'") from None
    state = _prepare(app, None)
    app.progress(f"serving MCP on stdio (server id {state.server_id})")
    serve_stdio(state)
    app.progress("stopped; this server's containers were removed")
    return ExitStatus.OK


def _prepare(app: App, key: str | None) -> ServerState:
    """What serving needs, before the first request: the engine, the base and prebuilt images."""
    from isol8.core.base_images import PROXY, ensure_base_images
    from isol8.frontends.server.state import ServerState

    backend = app.backend
    backend.version()
    base_images = dict(app.config.base_images)
    if not backend.builds_images:
        app.progress(f"{backend.name}: its nodes pull the images, nothing is built here (docs/kubernetes.md)")
        if app.config.prebuilt_images:
            app.progress("warning: prebuiltImages are built by an engine: isol8 --engine podman setup, with push")
    else:
        for outcome in ensure_base_images(
            backend, (*runtimes.NAMES, PROXY), base_images=base_images, strict=app.args.strict, progress=app.progress
        ):
            if outcome.warning:
                app.progress(f"warning: {outcome.warning}")
            done = "built" if outcome.built else "kept" if outcome.warning else "up to date"
            app.progress(f"{outcome.image}: {done}")
        build_prebuilt_images(app, base_images, push_must_work=False)  # a registry down never keeps it from serving
    state = ServerState(backend, app.config, key, app.packages())
    app.progress(f"starting warm pools ({state.pool.size} containers per runtime)")
    return state
