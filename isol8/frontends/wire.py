"""The JSON wire format of `isol8 serve` (the original isol8's): requests, results and stream events.

The server parses requests and renders results here, and the remote client builds requests
and reads events here, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from isol8.config import RUN_LIMITS
from isol8.core.payload import walk_directory
from isol8.core.runner import RunRequest, RunResult
from isol8.errors import RequestError

# Options the original isol8's clients may send that this server never takes from a request.
FIXED_OPTIONS = ("seccomp", "seccompProfile", "security", "persist", "readonlyRootFs")


@dataclass(frozen=True)
class WireRequest:
    """An execute request as sent: checked for shape (400), not yet for the server's policy."""

    runtime: str
    code: str | None
    cmd: str | None
    files: Mapping[str, bytes] = field(default_factory=dict)
    stdin: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/sandbox"
    install: tuple[str, ...] = ()
    limits: Mapping[str, object] = field(default_factory=dict)  # config keys (RUN_LIMITS, network) as sent
    image: str | None = None
    keep_background: bool = False
    session_id: object = None
    options: frozenset[str] = frozenset()
    allow: tuple[str, ...] | None = None  # networkFilter.whitelist (None: not sent)
    deny: tuple[str, ...] = ()  # networkFilter.blacklist


def _network_filter(raw: object) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """options.networkFilter {whitelist?, blacklist?} -> (allow or None, deny)."""
    if raw is None:
        return None, ()
    if not isinstance(raw, dict) or set(raw) - {"whitelist", "blacklist"}:
        raise RequestError(400, "networkFilter must be an object with whitelist and blacklist (lists of hosts)")
    lists = []
    for key in ("whitelist", "blacklist"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(h, str) for h in value)):
            raise RequestError(400, f"networkFilter.{key} must be a list of strings")
        lists.append(value)
    return (None if lists[0] is None else tuple(lists[0])), tuple(lists[1] or ())


def _files(raw: object) -> dict[str, bytes]:
    if not isinstance(raw, dict):
        raise RequestError(400, "files must be an object of path -> content")
    files = {}
    for path, content in raw.items():
        if isinstance(content, dict) and isinstance(content.get("base64"), str):
            try:
                files[str(path)] = base64.b64decode(content["base64"], validate=True)
            except binascii.Error:
                raise RequestError(400, f"files: {path!r}: not base64") from None
        elif isinstance(content, str):
            files[str(path)] = content.encode()
        else:
            raise RequestError(400, f'files: {path!r}: content must be a string or {{"base64": ...}}')
    return files


def _strings(raw: object, what: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise RequestError(400, f"{what} must be an object of name -> value")
    return {str(k): str(v) for k, v in raw.items()}


def parse_request(body: Mapping[str, Any]) -> WireRequest:
    """{request: {...}, options?: {...}, sessionId?} -> WireRequest, or RequestError 400."""
    req, opts = body.get("request"), body.get("options") or {}
    if not isinstance(req, dict) or not isinstance(opts, dict):
        raise RequestError(400, "expected {request: {...}, options?: {...}}")
    code, cmd = req.get("code"), req.get("cmd")
    if (code is None) == (cmd is None) or not isinstance(code or cmd, str):
        raise RequestError(400, "request must include exactly one of: code, cmd (a string)")
    limits = {key: opts[key] for key in (*RUN_LIMITS, "network") if key in opts}
    if "timeoutMs" in req:
        limits["timeoutMs"] = req["timeoutMs"]
    install = req.get("installPackages") or []
    if not isinstance(install, list) or not all(isinstance(p, str) for p in install):
        raise RequestError(400, "installPackages must be a list of strings")
    keep_background = opts.get("keepBackground", False)
    if not isinstance(keep_background, bool):
        raise RequestError(400, "keepBackground must be true or false")
    stdin = req.get("stdin")
    image = opts.get("image")
    if image is not None and not isinstance(image, str):
        raise RequestError(400, "image must be a string")
    allow, deny = _network_filter(opts.get("networkFilter"))
    return WireRequest(
        allow=allow,
        deny=deny,
        runtime=str(req.get("runtime") or "python"),
        code=code if isinstance(code, str) else None,
        cmd=cmd if isinstance(cmd, str) else None,
        files=_files(req.get("files") or {}),
        stdin=stdin if isinstance(stdin, str) else None,
        env=_strings(req.get("env") or {}, "env"),
        secrets=_strings(opts.get("secrets") or req.get("secrets") or {}, "secrets"),
        workdir=str(req.get("workdir") or "/sandbox"),
        install=tuple(install),
        limits=limits,
        image=image,
        keep_background=keep_background,
        session_id=body.get("sessionId"),
        options=frozenset(str(k) for k in opts),
    )


def result_json(result: RunResult) -> dict[str, Any]:
    """A run's result as the server and `isol8 run --json` give it."""
    return {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "exitCode": result.exit_code,
        "timedOut": result.timed_out,
        "oomKilled": result.oom_killed,
        "truncated": result.truncated,
        "durationMs": result.duration_ms,
        "runtime": result.runtime,
        "image": result.image,
        **({"network": {"log": [d.as_json() for d in result.network_log]}} if result.network_log is not None else {}),
    }


def _limit_values(request: RunRequest) -> dict[str, object]:
    policy = request.policy
    return {
        "timeoutMs": request.timeout_ms,
        "memoryLimit": policy.memory,
        "cpuLimit": policy.cpus,
        "pidsLimit": policy.pids_limit,
        "sandboxSize": policy.sandbox_size,
        "tmpSize": policy.tmp_size,
        "shmSize": policy.shm_size,
        "maxOutputSize": request.max_output,
        "network": policy.network,
    }


def request_body(request: RunRequest, *, limits: Iterable[str], install: Sequence[str]) -> dict[str, Any]:
    """The wire form of a RunRequest; of its limits only those named (the ones its caller asked for)."""
    body: dict[str, Any] = {"runtime": request.runtime.name, "workdir": request.workdir}
    if request.cmd is not None:
        body["cmd"] = request.cmd
    else:
        body["code"] = (request.code or b"").decode("utf-8", "replace")
    if request.env:
        body["env"] = dict(request.env)
    stdin = b"".join(request.stdin)
    if stdin:
        body["stdin"] = stdin.decode("utf-8", "replace")
    if request.files_dir is not None:
        body["files"] = {
            rel: {"base64": base64.b64encode(path.read_bytes()).decode()}
            for path, rel in walk_directory(request.files_dir)
            if path.is_file()
        }
    if install:
        body["installPackages"] = list(install)
    values = _limit_values(request)
    options: dict[str, Any] = {key: values[key] for key in limits if key != "timeoutMs"}
    if "timeoutMs" in limits:
        body["timeoutMs"] = request.timeout_ms
    if request.image is not None:
        options["image"] = request.image
    if request.secrets:
        options["secrets"] = dict(request.secrets)
    egress = request.policy.egress
    if egress is not None:
        options["network"] = "filtered"
        options["networkFilter"] = {"whitelist": list(egress.allow), "blacklist": list(egress.deny)}
    return {"request": body, "options": options}


def event(kind: str, data: str) -> bytes:
    """One Server-Sent Event of /execute/stream: {type: stdout|stderr|error|exit, data}."""
    return f"data: {json.dumps({'type': kind, 'data': data})}\n\n".encode()


def read_events(lines: Iterable[bytes]) -> Iterator[dict[str, str]]:
    """The events of an /execute/stream response, read line by line."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []
