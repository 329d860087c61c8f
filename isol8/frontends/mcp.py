"""`isol8 mcp`: isol8 as a Model Context Protocol server over stdio (the official SDK, isol8[mcp]).

Its tools are `isol8 serve`'s routes in another dress: each call becomes the server's wire
request (isol8.frontends.wire) and goes through the same policy (the config's `server` section
and `defaults` as ceilings), warm pools and sessions (isol8.frontends.server). Its stdout is
the protocol's: isol8's own messages go to stderr.
"""

from __future__ import annotations

import os
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from isol8.errors import Isol8Error, RequestError
from isol8.frontends.server import executions, session
from isol8.frontends.server.state import ServerState

INSTRUCTIONS = (
    "Run untrusted code in locked-down containers (no network unless the server's config allows "
    "it). `execute` runs once in a fresh sandbox; sessions keep /sandbox between executions."
)


def _body(
    code: str | None,
    cmd: str | None,
    runtime: str,
    packages: list[str] | None,
    files: dict[str, str] | None,
    output_paths: list[str] | None,
    stdin: str | None,
    env: dict[str, str] | None,
    timeout_ms: int | None,
    memory_limit: str | None,
) -> dict[str, Any]:
    """The tool's arguments as the server's execute request (fields left out when not given)."""
    given = {
        "code": code,
        "cmd": cmd,
        "installPackages": packages,
        "files": files,
        "outputPaths": output_paths,
        "stdin": stdin,
        "env": env,
        "timeoutMs": timeout_ms,
    }
    request = {"runtime": runtime, **{key: value for key, value in given.items() if value is not None}}
    return {"request": request, "options": {"memoryLimit": memory_limit} if memory_limit is not None else {}}


async def _call(function: Any, *args: Any) -> Any:
    """A blocking call of the server's in a worker thread; its refusals (with the HTTP status the
    server would answer) and failures as the tool's error, for the model to read."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except RequestError as exc:
        raise ToolError(f"{exc.status}: {exc.message}") from None
    except Isol8Error as exc:
        raise ToolError(str(exc)) from None


def _put(state: ServerState, session_id: str, path: str, data: bytes) -> str:
    where = session.sandbox_path(path)
    state.sessions.put_file(session.check_id(session_id), where, data)
    return where


def _get(state: ServerState, session_id: str, path: str) -> tuple[str, bytes]:
    where = session.sandbox_path(path)
    return where, state.sessions.get_file(session.check_id(session_id), where, state.settings.max_body_bytes)


def build(state: ServerState) -> MCPServer:
    app = MCPServer("isol8", instructions=INSTRUCTIONS)

    @app.tool()
    async def execute(
        code: str | None = None,
        cmd: str | None = None,
        runtime: str = "python",
        packages: list[str] | None = None,
        files: dict[str, str] | None = None,
        output_paths: list[str] | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        timeout_ms: int | None = None,
        memory_limit: str | None = None,
    ) -> dict[str, Any]:
        """Run code (or a bash command, `cmd`) once in a fresh locked-down sandbox.

        runtime: python, node, bun, deno or bash. packages: installed first (pip, npm or deno's npm:/jsr:).
        files: /sandbox paths -> text, written before the run. output_paths: /sandbox files or
        patterns to return (base64, in `files`). Limits may only tighten the server's. Returns
        stdout, stderr, exitCode, timedOut, oomKilled, usage and the rest of isol8's result."""
        body = _body(code, cmd, runtime, packages, files, output_paths, stdin, env, timeout_ms, memory_limit)
        result: dict[str, Any] = await _call(executions.execute, state, body)
        return result

    _session_tools(app, state)
    return app


def _session_tools(app: MCPServer, state: ServerState) -> None:
    """The tools of sessions: a sandbox kept between executions, its files put and got."""

    @app.tool()
    async def session_create(runtime: str = "python") -> dict[str, Any]:
        """Start a session: a sandbox whose /sandbox files stay between executions. Returns its sessionId."""
        session_id = f"mcp-{os.urandom(6).hex()}"
        first = {"sessionId": session_id, "request": {"cmd": "true", "runtime": runtime}}
        await _call(executions.execute, state, first)
        return {"sessionId": session_id, "runtime": runtime}

    @app.tool()
    async def session_execute(
        session_id: str,
        code: str | None = None,
        cmd: str | None = None,
        runtime: str = "python",
        packages: list[str] | None = None,
        output_paths: list[str] | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        timeout_ms: int | None = None,
    ) -> dict[str, Any]:
        """Run code (or a bash command, `cmd`) in a session, in its runtime; same result as `execute`.

        packages: those the session lacks are installed into it first, and stay for later executions."""
        body = _body(code, cmd, runtime, packages, None, output_paths, stdin, env, timeout_ms, None)
        result: dict[str, Any] = await _call(executions.execute, state, {**body, "sessionId": session_id})
        return result

    @app.tool()
    async def session_put_file(session_id: str, path: str, content: str, base64: bool = False) -> dict[str, Any]:
        """Write a file under /sandbox in a session: content is text, or base64 when base64 is true."""
        import binascii
        from base64 import b64decode

        try:
            data = b64decode(content, validate=True) if base64 else content.encode()
        except binascii.Error:
            raise ToolError("400: content is not base64") from None
        where = await _call(_put, state, session_id, path, data)
        return {"ok": True, "path": where}

    @app.tool()
    async def session_get_file(session_id: str, path: str) -> dict[str, Any]:
        """Read a file under /sandbox from a session; its content as base64."""
        from base64 import b64encode

        where, data = await _call(_get, state, session_id, path)
        return {"path": where, "content": b64encode(data).decode()}

    @app.tool()
    async def session_delete(session_id: str) -> dict[str, Any]:
        """End a session and remove its sandbox."""
        removed = await _call(lambda: state.sessions.remove(session.check_id(session_id)))
        return {"ok": True, "removed": removed}


def serve_stdio(state: ServerState) -> None:
    """Answer the client on stdin/stdout until it goes (or SIGINT/SIGTERM); then remove every container."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        state.warm_pools()
        anyio.run(build(state).run_stdio_async)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        state.close()
