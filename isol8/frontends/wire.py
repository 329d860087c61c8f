"""The JSON wire format of `isol8 serve` (the original isol8's): requests, results and stream events.

The server parses requests and renders results here, and the remote client builds requests
and reads events here, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from isol8.config import RUN_LIMITS
from isol8.core.payload import walk_directory
from isol8.core.runner import RunRequest, RunResult
from isol8.core.streams import Usage
from isol8.errors import RequestError

# The fields of a request, of its options and of the body around them that this server honours.
REQUEST_FIELDS = frozenset(
    {"code", "cmd", "runtime", "timeoutMs", "env", "stdin", "files", "installPackages", "workdir", "secrets"}
    | {"setupScript", "fileExtension", "outputPaths"}
)
OPTION_FIELDS = frozenset({*RUN_LIMITS, "network", "networkFilter", "image", "secrets", "keepBackground"})
BODY_FIELDS = frozenset({"request", "options", "sessionId"})
# The original isol8's request fields this server does not have: refused (400), never ignored.
UNSUPPORTED = {
    "codeUrl": "fetching code from a URL is not supported: send the code itself",
    "codeHash": "codeHash goes with codeUrl, which is not supported",
    "allowInsecureCodeUrl": "codeUrl is not supported",
    "agentFlags": "the agent runtime is not supported",
    "metadata": "metadata is for the original isol8's audit log, which this server does not keep",
}
TIMEOUT_MARKER = "EXECUTION TIMED OUT"  # the original's, in a timed-out result's stderr and stream error


def _client_option(name: str, value: object) -> bool:
    """An option of the original isol8's clients (they send several always): True when its value
    would loosen the server's policy (403), False when it asks for what the server does anyway or
    names client-side behaviour only; RequestError 400 for a value of the wrong shape."""

    def shape(ok: bool, expected: str) -> None:
        if not ok:
            raise RequestError(400, f"option {name} must be {expected}")

    if name in ("persist", "readonlyRootFs", "debug", "logNetwork"):
        shape(isinstance(value, bool), "true or false")
        return (name == "persist" and value is True) or (name == "readonlyRootFs" and value is False)
    if name == "mode":
        shape(value in ("ephemeral", "persistent"), '"ephemeral" or "persistent"')
        return False
    if name == "poolStrategy":
        shape(value in ("fast", "secure"), '"fast" or "secure"')
        return False
    if name == "poolSize":
        shape(
            (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, dict) and set(value) <= {"clean", "dirty"}),
            "a number or {clean, dirty}",
        )
        return False
    if name == "audit":
        shape(isinstance(value, dict), "an object")
        return False
    if name == "security":  # isol8's own seccomp profile applies whatever is asked: only these keep it
        shape(isinstance(value, dict), "an object")
        assert isinstance(value, dict)
        return set(value) - {"seccomp"} != set() or value.get("seccomp", "strict") not in ("strict", "default")
    if name == "remoteCode":
        shape(isinstance(value, dict), "an object")
        assert isinstance(value, dict)
        return value.get("enabled", False) is not False
    if name in ("seccomp", "seccompProfile"):  # isol8's own names: a request never picks its profile
        return True
    raise RequestError(400, f"unknown option {name}")


def _check_fields(body: Mapping[str, Any], req: Mapping[str, Any]) -> None:
    for fields, known, where in ((body, BODY_FIELDS, ""), (req, REQUEST_FIELDS, "request.")):
        for name in fields:
            if name in UNSUPPORTED and where:
                raise RequestError(400, f"request.{name}: {UNSUPPORTED[name]}")
            if name not in known:
                raise RequestError(400, f"unknown field {where}{name}")


_EXTENSION = re.compile(r"\.?([A-Za-z0-9]{1,16})")


def _code_file(raw: object) -> str | None:
    """fileExtension (".mjs" or "mjs") -> the code file's name, main<ext>."""
    if raw is None:
        return None
    matched = _EXTENSION.fullmatch(raw) if isinstance(raw, str) else None
    if matched is None:
        raise RequestError(400, "fileExtension must be a file extension such as .mjs (letters and digits)")
    return f"main.{matched.group(1)}"


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
    loosening: tuple[str, ...] = ()  # options whose values would loosen the policy (the server refuses them)
    setup_script: str | None = None
    filename: str | None = None  # the code file's name, from fileExtension
    output_paths: tuple[str, ...] = ()
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
    _check_fields(body, req)
    loosening = tuple(name for name in opts if name not in OPTION_FIELDS and _client_option(name, opts[name]))
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
    output_paths = req.get("outputPaths") or []
    if not isinstance(output_paths, list) or not all(isinstance(p, str) for p in output_paths):
        raise RequestError(400, "outputPaths must be a list of paths under /sandbox")
    setup = req.get("setupScript")
    if setup is not None and not isinstance(setup, str):
        raise RequestError(400, "setupScript must be a string (a bash script)")
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
        loosening=loosening,
        setup_script=setup or None,
        filename=_code_file(req.get("fileExtension")),
        output_paths=tuple(output_paths),
    )


def timestamp(seconds: float) -> str:
    """ISO 8601 in UTC, to the millisecond: 2026-12-03T09:15:02.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def files_json(result: RunResult) -> dict[str, Any]:
    """{files: {path: base64}, missingFiles: [pattern]}: the original isol8's files, and what matched none."""
    files = {path: base64.b64encode(data).decode() for path, data in (result.files or {}).items()}
    return {"files": files, "missingFiles": list(result.missing_files)}


def usage_json(usage: Usage) -> dict[str, int | None]:
    """{cpuTimeMs, memoryPeakBytes, pidsPeak?}: pidsPeak only where the kernel counts it."""
    shown = {"cpuTimeMs": usage.cpu_time_ms, "memoryPeakBytes": usage.memory_peak_bytes}
    return shown if usage.pids_peak is None else {**shown, "pidsPeak": usage.pids_peak}


def result_json(result: RunResult) -> dict[str, Any]:
    """A run's result as the server and `isol8 run --json` give it. A timed-out run's stderr ends
    with the original isol8's marker, as its results' do."""
    import uuid

    stderr = result.stderr + f"\n--- {TIMEOUT_MARKER} ---" if result.timed_out else result.stderr
    return {
        "stdout": result.stdout,
        "stderr": stderr,
        "exitCode": result.exit_code,
        "timedOut": result.timed_out,
        "oomKilled": result.oom_killed,
        "truncated": result.truncated,
        "durationMs": result.duration_ms,
        "runtime": result.runtime,
        "image": result.image,
        "containerId": result.container,
        "executionId": str(uuid.uuid4()),
        "timestamp": timestamp(time.time()),
        **({"usage": usage_json(result.usage)} if result.usage is not None else {}),
        **(files_json(result) if result.files is not None else {}),
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
    if request.setup is not None:
        body["setupScript"] = request.setup
    if request.output_paths:
        body["outputPaths"] = list(request.output_paths)
    extension = posixpath.splitext(request.filename or "")[1]
    if request.code is not None and _EXTENSION.fullmatch(extension):
        body["fileExtension"] = extension
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
