"""The server policy without an engine: each limit is parsed (400), then compared with the config's (403)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from isol8.backends.engine.backend import EngineBackend  # noqa: E402
from isol8.backends.engine.dialect import DOCKER  # noqa: E402
from isol8.config import DEFAULTS, Config, PackageSettings  # noqa: E402
from isol8.config.layers import Layer, merge  # noqa: E402
from isol8.errors import RequestError  # noqa: E402
from isol8.frontends.server.policy import build_run  # noqa: E402
from isol8.frontends.server.state import ServerState  # noqa: E402

MIB, GIB = 1024**2, 1024**3
BAD = [0, -1, "0", "-1", "0.5", "nan", "inf", "-inf", "1e400", True, False, None, "", "  ", [], {}, "1\n", 10**400]
LIMITS = ["memoryLimit", "sandboxSize", "tmpSize", "cpuLimit", "pidsLimit", "timeoutMs", "maxOutputSize"]
ABOVE = {
    "memoryLimit": "513m",
    "sandboxSize": "1g",
    "tmpSize": 256 * MIB + 1,
    "cpuLimit": 1.01,
    "pidsLimit": 65,
    "timeoutMs": 30_001,
    "maxOutputSize": "2m",
}


def make_state(**defaults: object) -> ServerState:
    data = merge(DEFAULTS, [Layer("test", {"defaults": defaults})])[0]
    return ServerState(EngineBackend(DOCKER), Config(data), None, PackageSettings())


@pytest.fixture
def state() -> Iterator[ServerState]:
    made = make_state()
    yield made
    made.sessions.close()


def body(**options: object) -> dict[str, Any]:
    return {"request": {"code": "print(1)", "runtime": "python"}, "options": options}


def status_of(state: ServerState, payload: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    try:
        build_run(state, payload, tmp_path)
    except RequestError as exc:
        return exc.status, exc.message
    return 200, ""


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n in LIMITS for v in BAD if (n, v) != ("cpuLimit", "0.5")], ids=repr
)  # half a core is a valid CPU limit
def test_an_invalid_limit_is_400_naming_it(state: ServerState, tmp_path: Path, name: str, value: object) -> None:
    status, message = status_of(state, body(**{name: value}), tmp_path)
    assert status == 400, message
    assert message.startswith(f"{name}: ")


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_an_invalid_request_timeout_is_400(state: ServerState, tmp_path: Path, value: object) -> None:
    payload = {"request": {"code": "print(1)", "runtime": "python", "timeoutMs": value}}
    assert status_of(state, payload, tmp_path)[0] == 400


@pytest.mark.parametrize("name", LIMITS)
def test_a_valid_limit_above_the_ceiling_is_403(state: ServerState, tmp_path: Path, name: str) -> None:
    status, message = status_of(state, body(**{name: ABOVE[name]}), tmp_path)
    assert status == 403, message
    assert "exceeds the server's limit" in message


def test_sizes_are_compared_in_bytes(tmp_path: Path) -> None:
    state = make_state(memoryLimit="1g")
    try:
        assert status_of(state, body(memoryLimit="1025m"), tmp_path)[0] == 403
        assert status_of(state, body(memoryLimit=GIB + 1), tmp_path)[0] == 403
        run, _ = build_run(state, body(memoryLimit="512m"), tmp_path)
        assert run.policy.memory == 512 * MIB
        run, _ = build_run(state, body(memoryLimit="1024m"), tmp_path)
        assert run.policy.memory == GIB
    finally:
        state.sessions.close()


def test_below_the_minimum_is_400_not_a_tighter_limit(state: ServerState, tmp_path: Path) -> None:
    """ "0.5" is half a byte (no memory limit at all on docker), never compared as a number below 512m."""
    for name in ("memoryLimit", "sandboxSize", "tmpSize", "maxOutputSize", "pidsLimit", "timeoutMs"):
        assert status_of(state, body(**{name: "0.5"}), tmp_path)[0] == 400, name
    assert status_of(state, body(memoryLimit="5m"), tmp_path)[0] == 400
    assert status_of(state, body(cpuLimit=0.009), tmp_path)[0] == 400


def test_the_tightest_valid_values_are_accepted_parsed(state: ServerState, tmp_path: Path) -> None:
    options = dict(memoryLimit="6m", sandboxSize="1m", tmpSize=MIB, cpuLimit="0.01", pidsLimit="1", maxOutputSize=1)
    run, _ = build_run(state, {**body(**options), "request": {"cmd": "true", "timeoutMs": "1ms"}}, tmp_path)
    policy = run.policy
    assert (policy.memory, policy.sandbox_size, policy.tmp_size) == (6 * MIB, MIB, MIB)
    assert (policy.cpus, policy.pids_limit, run.max_output, run.timeout_ms) == (0.01, 1, 1, 1)


def test_absent_limits_are_the_configs(tmp_path: Path) -> None:
    state = make_state(memoryLimit="256m", cpuLimit="0.5", pidsLimit=16, timeoutMs="5s")
    try:
        run, _ = build_run(state, body(), tmp_path)
    finally:
        state.sessions.close()
    assert (run.policy.memory, run.policy.cpus, run.policy.pids_limit, run.timeout_ms) == (256 * MIB, 0.5, 16, 5000)


def make_server(server: dict[str, object], **defaults: object) -> ServerState:
    data = merge(DEFAULTS, [Layer("test", {"defaults": defaults, "server": server})])[0]
    return ServerState(EngineBackend(DOCKER), Config(data), None, PackageSettings())


@pytest.mark.parametrize("config_network", ["none", "host"])
def test_host_network_needs_the_servers_permission_whoever_chose_it(tmp_path: Path, config_network: str) -> None:
    """A config whose defaults say host does not give every request the host's network: the permission
    is checked against the network the run gets, not only against the one a request names."""
    closed = make_server({}, network=config_network)
    opened = make_server({"allowHostNetwork": True}, network=config_network)
    try:
        assert status_of(closed, body(network="host"), tmp_path)[0] == 403
        assert status_of(closed, body(), tmp_path)[0] == (403 if config_network == "host" else 200)
        assert build_run(closed, body(network="none"), tmp_path)[0].policy.network == "none"
        assert build_run(opened, body(network="host"), tmp_path)[0].policy.network == "host"
        assert build_run(opened, body(), tmp_path)[0].policy.network == config_network
    finally:
        closed.sessions.close()
        opened.sessions.close()


def test_a_refused_request_writes_no_files(tmp_path: Path) -> None:
    state = make_server({}, network="host")
    try:
        payload = body()
        payload["request"]["files"] = {"a.txt": "a"}
        assert status_of(state, payload, tmp_path)[0] == 403
    finally:
        state.sessions.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a.txt", "/sandbox/a.txt"), ("/sandbox/sub/b", "/sandbox/sub/b"), ("sub/../c", "/sandbox/c")],
)
def test_a_file_path_inside_the_sandbox_is_normalised(raw: str, expected: str) -> None:
    from isol8.frontends.server.session import sandbox_path

    assert sandbox_path(raw) == expected


@pytest.mark.parametrize("raw", ["", "../etc/passwd", "/etc/passwd", "/sandbox", "a\0b", "/sandbox/x\0", 7, None])
def test_a_file_path_outside_the_sandbox_or_unusable_is_400(raw: object) -> None:
    """A NUL byte would reach the engine client's argv and fail there as a 500."""
    from isol8.frontends.server.session import sandbox_path

    with pytest.raises(RequestError) as caught:
        sandbox_path(raw)
    assert caught.value.status == 400


def test_a_filtered_request_may_allow_only_the_servers_allowed_hosts(tmp_path: Path) -> None:
    state = make_server({"allowedHosts": ["api.example.com", "*.example.org"]})
    try:

        def asked(*hosts: str, **extra: object) -> dict[str, Any]:
            return body(network="filtered", networkFilter={"whitelist": list(hosts), **extra})

        run, _ = build_run(state, asked("api.example.com", "a.example.org", blacklist=["b.example.org"]), tmp_path)
        assert run.policy.egress is not None
        assert (run.policy.egress.allow, run.policy.egress.deny) == (
            ("api.example.com", "a.example.org"),
            ("b.example.org",),
        )
        assert status_of(state, asked(), tmp_path)[0] == 200  # reaches nothing
        assert status_of(state, asked("evil.test"), tmp_path) == (
            403,
            "host evil.test is not allowed by this server's policy (server.allowedHosts)",
        )
        assert status_of(state, asked(r"^.*\.example\.com$"), tmp_path)[0] == 403
        assert status_of(state, asked("*.example.com"), tmp_path)[0] == 403
        assert status_of(state, asked("a b"), tmp_path)[0] == 400
        assert status_of(state, body(network="filtered", networkFilter={"whitelist": "a"}), tmp_path)[0] == 400
        assert status_of(state, body(network="filtered", networkFilter={"allow": []}), tmp_path)[0] == 400
        assert (
            status_of(state, body(network="none", networkFilter={"whitelist": ["api.example.com"]}), tmp_path)[0] == 400
        )
        assert status_of(state, {**asked("api.example.com"), "sessionId": "s1"}, tmp_path)[0] == 400
    finally:
        state.sessions.close()


def test_a_configs_own_filtered_default_is_held_to_the_ceiling_too(tmp_path: Path) -> None:
    data = merge(
        DEFAULTS,
        [Layer("test", {"defaults": {"network": "filtered"}, "network": {"whitelist": ["a.test"]}, "server": {}})],
    )[0]
    state = ServerState(EngineBackend(DOCKER), Config(data), None, PackageSettings())
    try:
        assert status_of(state, body(), tmp_path)[0] == 403
        assert status_of(state, body(networkFilter={"whitelist": []}), tmp_path)[0] == 200
    finally:
        state.sessions.close()


# ---- the original isol8's clients: every field honoured or refused -----------------------------

# What the TypeScript RemoteIsol8 client sends with every request, none of which loosens anything.
ORIGINAL_CLIENT_OPTIONS: dict[str, object] = {
    "persist": False,
    "readonlyRootFs": True,
    "security": {"seccomp": "strict"},
    "mode": "ephemeral",
    "debug": False,
    "poolStrategy": "fast",
    "poolSize": {"clean": 1, "dirty": 1},
    "audit": {"enabled": False},
    "remoteCode": {"enabled": False, "allowedSchemes": ["https"]},
    "logNetwork": False,
}


def test_the_original_clients_usual_options_are_accepted(state: ServerState, tmp_path: Path) -> None:
    assert status_of(state, body(**ORIGINAL_CLIENT_OPTIONS), tmp_path) == (200, "")
    for name, value in [
        ("security", {"seccomp": "default"}),
        ("security", {}),
        ("mode", "persistent"),
        ("poolStrategy", "secure"),
        ("poolSize", 3),
        ("debug", True),
        ("logNetwork", True),
        ("remoteCode", {}),
    ]:
        assert status_of(state, body(**{name: value}), tmp_path) == (200, ""), (name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("persist", True),
        ("readonlyRootFs", False),
        ("security", {"seccomp": "unconfined"}),
        ("security", {"seccomp": "custom", "customProfilePath": "/etc/shadow"}),
        ("security", {"customProfilePath": "/tmp/p.json"}),
        ("remoteCode", {"enabled": True}),
        ("seccomp", "unconfined"),
        ("seccompProfile", "/tmp/p.json"),
    ],
    ids=repr,
)
def test_an_option_that_would_loosen_the_policy_is_403_naming_it(
    state: ServerState, tmp_path: Path, name: str, value: object
) -> None:
    assert status_of(state, body(**{**ORIGINAL_CLIENT_OPTIONS, name: value}), tmp_path) == (
        403,
        f"option {name} is not allowed by this server's policy",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("persist", "no"), ("readonlyRootFs", 1), ("mode", "fast"), ("poolSize", True), ("poolSize", {"warm": 1})]
    + [("poolStrategy", None), ("audit", True), ("security", "strict"), ("remoteCode", False), ("debug", "yes")],
    ids=repr,
)
def test_a_client_option_of_the_wrong_shape_is_400_naming_it(
    state: ServerState, tmp_path: Path, name: str, value: object
) -> None:
    status, message = status_of(state, body(**{name: value}), tmp_path)
    assert (status, message.split(" must be ")[0]) == (400, f"option {name}")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (body(colour="red"), "unknown option colour"),
        ({"request": {"code": "1", "runtime": "python", "timeout": 5}}, "unknown field request.timeout"),
        ({"request": {"code": "1"}, "session": "s1"}, "unknown field session"),
        ({"request": {"code": "1", "outputPaths": "/sandbox/a"}}, "outputPaths must be a list"),
        ({"request": {"code": "1", "outputPaths": ["/etc/passwd"]}}, "output path must be inside /sandbox"),
        ({"request": {"codeUrl": "https://example.com/a.py"}}, "request.codeUrl: "),
        ({"request": {"code": "1", "metadata": {"who": "me"}}}, "request.metadata: "),
        ({"request": {"code": "1", "agentFlags": "-x"}}, "request.agentFlags: "),
    ],
    ids=repr,
)
def test_a_field_the_server_does_not_honour_is_400_naming_it(
    state: ServerState, tmp_path: Path, payload: dict[str, Any], message: str
) -> None:
    status, got = status_of(state, payload, tmp_path)
    assert status == 400 and got.startswith(message), got


@pytest.mark.parametrize(("raw", "name"), [(".mjs", "main.mjs"), ("cjs", "main.cjs"), (".TS", "main.TS")])
def test_file_extension_names_the_code_file(state: ServerState, tmp_path: Path, raw: str, name: str) -> None:
    payload = {"request": {"code": "1", "runtime": "node", "fileExtension": raw}}
    assert build_run(state, payload, tmp_path)[0].filename == name


@pytest.mark.parametrize("raw", ["", ".", "../x", ".a/b", ".a b", ".x" * 10, 5, [".js"]], ids=repr)
def test_a_file_extension_that_is_not_one_is_400(state: ServerState, tmp_path: Path, raw: object) -> None:
    payload = {"request": {"code": "1", "runtime": "node", "fileExtension": raw}}
    status, message = status_of(state, payload, tmp_path)
    assert status == 400 and message.startswith("fileExtension must be"), message


def test_setup_script_reaches_the_run_request(state: ServerState, tmp_path: Path) -> None:
    payload = {"request": {"code": "1", "setupScript": "echo hi > /sandbox/x"}}
    assert build_run(state, payload, tmp_path)[0].setup == "echo hi > /sandbox/x"
    assert build_run(state, {"request": {"code": "1", "setupScript": ""}}, tmp_path)[0].setup is None
    assert status_of(state, {"request": {"code": "1", "setupScript": ["echo"]}}, tmp_path)[0] == 400


def test_a_result_carries_the_original_clients_fields() -> None:
    import re
    import uuid

    from isol8.core.runner import RunResult
    from isol8.frontends.wire import result_json

    result = RunResult("out", "err", 0, False, False, False, 12, "python", "isol8:python", "isol8-abc", b"out", b"err")
    first, second = result_json(result), result_json(result)
    assert first["containerId"] == "isol8-abc"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["timestamp"]), first["timestamp"]
    assert uuid.UUID(first["executionId"]).version == 4 and first["executionId"] != second["executionId"]
    assert first["stderr"] == "err"
    assert "usage" not in first  # not reported: not made up
    from isol8.core.streams import Usage

    assert result_json(result._replace(usage=Usage(812, 52428800, None)))["usage"] == {
        "cpuTimeMs": 812,
        "memoryPeakBytes": 52428800,
    }
    assert result_json(result._replace(usage=Usage(1, 2, 3)))["usage"] == {
        "cpuTimeMs": 1,
        "memoryPeakBytes": 2,
        "pidsPeak": 3,
    }
    timed_out = result_json(result._replace(exit_code=124, timed_out=True))
    assert (timed_out["exitCode"], timed_out["timedOut"]) == (124, True)
    assert timed_out["stderr"] == "err\n--- EXECUTION TIMED OUT ---"


def test_timestamps_are_utc_to_the_millisecond() -> None:
    from isol8.frontends.wire import timestamp

    assert timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert timestamp(1796285133.7871) == "2026-12-03T08:05:33.787Z"


def test_the_wire_carries_setup_and_file_extension_both_ways() -> None:
    from isol8.config import Config
    from isol8.core.plan import plan_run
    from isol8.frontends.wire import parse_request, request_body
    from isol8.runtimes import get

    config = Config(DEFAULTS)
    request = plan_run(config, {}, runtime=get("node"), code=b"1", filename="x/app.mjs", setup="npm -v")
    sent = request_body(request, limits=[], install=[])
    assert (sent["request"]["setupScript"], sent["request"]["fileExtension"]) == ("npm -v", ".mjs")
    asked = parse_request(sent)
    assert (asked.setup_script, asked.filename) == ("npm -v", "main.mjs")
    plain = request_body(plan_run(config, {}, runtime=get("node"), code=b"1"), limits=[], install=[])
    assert {"setupScript", "fileExtension"}.isdisjoint(plain["request"])
