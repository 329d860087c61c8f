"""isol8 mcp on both engines, driven by the MCP SDK's own client over stdio: tools, policy, sessions, cleanup."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.integration.conftest import ISOL8, assert_no_containers

TOOLS = ["execute", "session_create", "session_execute", "session_put_file", "session_get_file", "session_delete"]


def with_client(engine: str, tmp_path: Path, test: Callable[[ClientSession], Awaitable[None]]) -> None:
    """Start `isol8 mcp` (a warm container per runtime) as an agent would, run `test` in its session."""
    (tmp_path / "isol8.config.json").write_text(json.dumps({"server": {"poolSize": 1}}))

    async def main() -> None:
        server = StdioServerParameters(
            command=ISOL8, args=["--engine", engine, "mcp"], cwd=tmp_path, env=dict(os.environ)
        )
        with (tmp_path / "mcp.log").open("w") as errlog:
            async with stdio_client(server, errlog=errlog) as streams, ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                await test(session)

    anyio.run(main)


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error
    return "".join(getattr(part, "text", "") for part in result.content)


def test_an_agent_lists_the_tools_and_runs_code(engine: str, tmp_path: Path) -> None:
    async def test(session: ClientSession) -> None:
        listed = await session.list_tools()
        assert [tool.name for tool in listed.tools] == TOOLS
        result = await call(session, "execute", code="print(6*7)")
        assert (result["stdout"], result["exitCode"]) == ("42\n", 0)
        node = await call(session, "execute", code="console.log(process.argv.length)", runtime="node")
        assert node["stdout"] == "2\n"
        made = await call(
            session,
            "execute",
            cmd="cat in.txt > out.txt; echo done",
            runtime="bash",
            files={"in.txt": "from the agent"},
            output_paths=["out.txt"],
        )
        assert made["stdout"] == "done\n"
        assert base64.b64decode(made["files"]["/sandbox/out.txt"]) == b"from the agent"

    with_client(engine, tmp_path, test)
    assert_no_containers(engine)  # the warm pool went with the client


def test_the_servers_policy_holds_for_an_agent(engine: str, tmp_path: Path) -> None:
    async def test(session: ClientSession) -> None:
        assert "403: memoryLimit 4g exceeds the server's limit 512m" in await refused(
            session, "execute", code="1", memory_limit="4g"
        )
        assert "403: timeoutMs 60000 exceeds" in await refused(session, "execute", code="1", timeout_ms=60_000)
        network = await call(session, "execute", code="import socket; socket.create_connection(('1.1.1.1', 53), 2)")
        assert network["exitCode"] == 1 and "Network is unreachable" in network["stderr"]
        assert "400:" in await refused(session, "execute", code="1", output_paths=["/etc/passwd"])

    with_client(engine, tmp_path, test)


def test_an_agents_session_keeps_files_between_executions(engine: str, tmp_path: Path) -> None:
    async def test(session: ClientSession) -> None:
        created = await call(session, "session_create", runtime="python")
        sid = created["sessionId"]
        payload = base64.b64encode(bytes(range(256))).decode()
        await call(session, "session_put_file", session_id=sid, path="data.bin", content=payload, base64=True)
        first = await call(
            session, "session_execute", session_id=sid, code="d = open('data.bin','rb').read(); print(len(d))"
        )
        assert first["stdout"] == "256\n"
        await call(session, "session_execute", session_id=sid, code="open('note.txt', 'w').write('kept')")
        got = await call(session, "session_get_file", session_id=sid, path="/sandbox/note.txt")
        assert base64.b64decode(got["content"]) == b"kept"
        assert (await call(session, "session_delete", session_id=sid))["removed"] is True
        assert "404:" in await refused(session, "session_get_file", session_id=sid, path="note.txt")
        assert "400:" in await refused(session, "session_put_file", session_id=sid, path="../etc/x", content="x")

    with_client(engine, tmp_path, test)
    assert_no_containers(engine)
