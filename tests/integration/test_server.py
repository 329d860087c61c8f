"""isol8 serve on both engines and on the simulated Kubernetes node: start-up, auth, execute and
stream, policy, isolation, concurrency, sessions, packages, shutdown."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest

from isol8.frontends.remote import Isol8Remote, RemoteError
from tests.integration.conftest import ISOL8, Result, default_gateway, require_engine, run_isol8, run_with
from tests.integration.kube import Cluster, open_cluster
from tests.integration.ports import free_port
from tests.unit.test_server_policy import ORIGINAL_CLIENT_OPTIONS

KEY = "test-key-" + os.urandom(8).hex()


BACKENDS = ("docker", "podman", "kubernetes")


@dataclass
class Side:
    """Where a server runs its containers: an engine, or the simulated Kubernetes node, whose Pods
    are podman's (its engine for what a test starts beside the server)."""

    name: str
    engine: str
    options: list[str]  # isol8's global options that choose it
    env: dict[str, str]
    cluster: Cluster | None = None

    @classmethod
    def of_engine(cls, engine: str) -> Side:
        return cls(engine, engine, ["--engine", engine], dict(os.environ))

    def instances(self, server_id: str) -> list[str]:
        """The names of the server's containers, or Pods."""
        label = f"org.isol8.server.id={server_id}"
        if self.cluster is not None:
            return self.cluster.pods(label)
        argv = [self.engine, "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"]
        return subprocess.run(argv, capture_output=True, text=True).stdout.split()

    def isol8(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_with(self.options, *args, env={**self.env, **(env or {})})


@pytest.fixture(scope="module", params=BACKENDS)
def side(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Side:
    if request.param != "kubernetes":
        return Side.of_engine(require_engine(request.param, request.config))
    cluster = open_cluster("simulated", tmp_path_factory)
    return Side("kubernetes", "podman", cluster.options, cluster.env, cluster)


@dataclass
class Server:
    url: str
    side: Side
    proc: subprocess.Popen[bytes]
    log: Path
    prebuilt: str

    @property
    def engine(self) -> str:
        return self.side.engine

    @property
    def id(self) -> str:
        return self.log.read_text().split("(server id ", 1)[1].split(")", 1)[0]

    def client(self, key: str | None = KEY) -> Isol8Remote:
        return Isol8Remote(self.url, key)


def _start(side: Side, tmp: Path, **config: object) -> Server:
    """`isol8 serve` in tmp, whose project file has only its prebuilt image and `config`: the base
    images come from the user file that the quick start wrote (layered, not hidden)."""
    prebuilt = f"isol8-test-served-{os.getpid()}-{side.name}"
    (tmp / "isol8.config.json").write_text(
        json.dumps({"prebuiltImages": [{"tag": prebuilt, "runtime": "bash", "setupScript": "echo served"}], **config})
    )
    port = free_port()
    log = tmp / "serve.log"
    proc = subprocess.Popen(
        [ISOL8, *side.options, "serve", "--port", str(port), "--key", KEY],
        cwd=tmp,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=side.env,
    )
    server = Server(f"http://127.0.0.1:{port}", side, proc, log, prebuilt)
    deadline = time.monotonic() + 300
    while True:
        try:
            server.client().health()
            return server
        except RemoteError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


def _stop(server: Server) -> None:
    server_id = server.id
    assert server.side.instances(server_id)  # its warm pool
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=90) == 0, server.log.read_text()
    assert server.side.instances(server_id) == []
    subprocess.run([server.engine, "rmi", "-f", server.prebuilt], capture_output=True)


@pytest.fixture(scope="module")
def server(side: Side, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = _start(side, tmp_path_factory.mktemp("serve"), maxConcurrent=4, server={"queueTimeoutMs": 120_000})
    yield started
    _stop(started)


def test_startup_built_the_prebuilt_image_before_health_answered(server: Server) -> None:
    log = server.log.read_text()
    if server.side.cluster is not None:  # a cluster builds nothing: its images come from a registry
        assert "nothing is built here" in log and f"{server.prebuilt}: built" not in log, log
        return
    ref = server.prebuilt if server.engine == "docker" else f"localhost/{server.prebuilt}"
    labels = subprocess.run(
        [server.engine, "image", "inspect", "--format", "{{json .Config.Labels}}", ref], capture_output=True, text=True
    )
    assert labels.returncode == 0
    assert json.loads(labels.stdout)["org.isol8.setup"] == "echo served"
    assert log.index(f"{server.prebuilt}: built") < log.index("listening on")
    assert "building isol8:" not in log  # the project file did not hide the user file's baseImages
    assert all(f"isol8:{rt}: up to date" in log for rt in ("python", "node", "bun", "deno", "bash")), log


def test_serve_starts_when_a_base_image_cannot_be_had(engine: str, tmp_path: Path) -> None:
    unreachable = "unreachable.invalid/isol8-test/debian:12"
    server = _start(Side.of_engine(engine), tmp_path, baseImages={"bash": unreachable})
    try:
        log = server.log.read_text()
        assert f"isol8: warning: isol8:bash: could not check its base image {unreachable} (" in log
        assert "isol8:bash: kept" in log
        result = server.client().execute({"request": {"code": "echo served anyway", "runtime": "bash"}})
        assert result["stdout"] == "served anyway\n"
    finally:
        _stop(server)


def _post(server: Server, path: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_auth(server: Server) -> None:
    body = {"request": {"code": "print(1)", "runtime": "python"}}
    assert _post(server, "/execute", body, {}) == (401, {"error": "Missing Authorization header"})
    assert _post(server, "/execute", body, {"Authorization": "Bearer wrong"}) == (403, {"error": "Invalid API key"})
    status, result = _post(server, "/execute", body, {"Authorization": f"Bearer {KEY}"})
    assert (status, result["stdout"]) == (200, "1\n")


@pytest.mark.parametrize(
    ("runtime", "field", "source", "expected"),
    [
        ("python", "code", "import sys; print('py'); print('err', file=sys.stderr); sys.exit(3)", ("py\n", "err\n", 3)),
        ("node", "code", "console.log('node'); console.error('err'); process.exit(4)", ("node\n", "err\n", 4)),
        ("bash", "cmd", "echo bash; echo err >&2; exit 5", ("bash\n", "err\n", 5)),
    ],
)
def test_execute_and_stream(server: Server, runtime: str, field: str, source: str, expected: tuple) -> None:
    body = {"request": {field: source, "runtime": runtime}}
    result = server.client().execute(body)
    assert (result["stdout"], result["stderr"], result["exitCode"]) == expected
    assert result["runtime"] == runtime and result["executionId"]
    events = list(server.client().stream(body))
    out = "".join(e["data"] for e in events if e["type"] == "stdout")
    err = "".join(e["data"] for e in events if e["type"] == "stderr")
    assert (out, err, events[-1]) == (expected[0], expected[1], {"type": "exit", "data": str(expected[2])})


def test_policy_refuses_host_network_and_limits_above_the_ceiling(server: Server) -> None:
    client = server.client()
    for options, message in (
        ({"network": "host"}, "network host is not allowed"),
        ({"memoryLimit": "4g"}, "memoryLimit 4g exceeds the server's limit 512m"),
        ({"image": "isol8:bash"}, "choosing an image is not allowed"),
        ({"seccomp": "unconfined"}, "option seccomp is not allowed"),
    ):
        with pytest.raises(RemoteError, match=message) as caught:
            client.execute({"request": {"code": "print(1)", "runtime": "python"}, "options": options})
        assert caught.value.status == 403
    tighter = client.execute({"request": {"code": "print(1)", "runtime": "python"}, "options": {"memoryLimit": "128m"}})
    assert tighter["exitCode"] == 0


def test_two_requests_never_see_each_others_files_or_processes(server: Server) -> None:
    client = server.client()
    first = client.execute(
        {
            "request": {
                "cmd": "echo secret > /sandbox/left; echo x > /tmp/left; (sleep 30 &) ; echo done",
                "runtime": "bash",
            }
        }
    )
    assert first["stdout"] == "done\n"
    second = client.execute(
        {"request": {"cmd": "ls -A /sandbox /tmp; ps -e -o comm= | grep -c sleep || true", "runtime": "bash"}}
    )
    assert second["stdout"] == "/sandbox:\n.isol8-cmd.sh\n\n/tmp:\n0\n", second


def test_fifty_concurrent_executions(server: Server) -> None:
    def one(i: int) -> str:
        return str(server.client().execute({"request": {"code": f"print({i} * 2)", "runtime": "python"}})["stdout"])

    with ThreadPoolExecutor(50) as pool:
        outputs = list(pool.map(one, range(50)))
    assert outputs == [f"{i * 2}\n" for i in range(50)]


def test_run_host_goes_through_the_server(server: Server) -> None:
    done = run_isol8(server.engine, "run", "--host", server.url, "--key", KEY, "-r", "node", "-e", "console.log(6 * 7)")
    assert (done.status, done.stdout) == (0, "42\n"), done.stderr


def test_a_request_beyond_the_queue_timeout_gets_429(side: Side, tmp_path: Path) -> None:
    busy = _start(side, tmp_path, maxConcurrent=1, server={"queueTimeoutMs": 500})
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(
                busy.client().execute, {"request": {"code": "import time; time.sleep(4)", "runtime": "python"}}
            )
            time.sleep(1.5)
            with pytest.raises(RemoteError) as caught:
                busy.client().execute({"request": {"code": "print(1)", "runtime": "python"}})
            assert caught.value.status == 429
            assert slow.result()["exitCode"] == 0
    finally:
        _stop(busy)


def test_serving_without_a_key_is_refused(engine: str) -> None:
    done = run_isol8(engine, "serve", "--port", str(free_port()), env={"ISOL8_API_KEY": ""})
    assert done.status == 2
    assert "API key is required" in done.stderr


def test_executions_use_warm_containers_once(server: Server) -> None:
    names = server.side.instances(server.id)
    first = server.client().execute({"request": {"code": "print(1)", "runtime": "python"}})
    assert first["containerId"] in names  # started before the request: an exec, not a new container
    second = server.client().execute({"request": {"code": "print(2)", "runtime": "python"}})
    assert second["containerId"] != first["containerId"]  # never handed to another request


def _session_call(server: Server, method: str, path: str, body: object | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request) as response:
        return dict(json.loads(response.read()))


def test_a_session_keeps_files_between_executions_and_takes_turns(server: Server) -> None:
    import base64

    client = server.client()
    sid = f"s-{os.getpid()}-{server.side.name}"
    first = client.execute({"sessionId": sid, "request": {"cmd": "echo kept > note.txt; echo ok", "runtime": "bash"}})
    second = client.execute({"sessionId": sid, "request": {"cmd": "cat note.txt", "runtime": "bash"}})
    assert (first["stdout"], second["stdout"]) == ("ok\n", "kept\n")
    payload = bytes(range(256))
    _session_call(
        server,
        "POST",
        "/file",
        {"sessionId": sid, "path": "sub/data.bin", "content": base64.b64encode(payload).decode()},
    )
    got = _session_call(server, "GET", f"/file?sessionId={sid}&path=sub/data.bin")
    assert base64.b64decode(str(got["content"])) == payload
    sizes = client.execute({"sessionId": sid, "request": {"cmd": "wc -c < sub/data.bin", "runtime": "bash"}})
    assert sizes["stdout"] == "256\n"
    # concurrent executions on one session are serialised
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda _: client.execute(
                    {"sessionId": sid, "request": {"cmd": "sleep 1; echo done", "runtime": "bash"}}
                ),
                range(2),
            )
        )
    assert [r["stdout"] for r in runs] == ["done\n", "done\n"]
    assert time.monotonic() - started >= 2.0
    listed = _session_call(server, "GET", "/sessions")["sessions"]
    assert sid in [s["id"] for s in listed]  # type: ignore[union-attr]
    assert _session_call(server, "DELETE", f"/session/{sid}") == {"ok": True, "removed": True}
    assert sid not in [s["id"] for s in _session_call(server, "GET", "/sessions")["sessions"]]  # type: ignore[union-attr]
    with pytest.raises(urllib.error.HTTPError) as caught:
        _session_call(server, "GET", f"/file?sessionId={sid}&path=sub/data.bin")
    assert caught.value.code == 404


def test_file_paths_must_stay_inside_sandbox(server: Server) -> None:
    sid = f"p-{os.getpid()}-{server.side.name}"
    server.client().execute({"sessionId": sid, "request": {"cmd": "true", "runtime": "bash"}})
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            _session_call(server, "GET", f"/file?sessionId={sid}&path=../etc/passwd")
        assert caught.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as caught:  # a NUL byte: refused, not a 500
            _session_call(server, "POST", "/file", {"sessionId": sid, "path": "a\u0000b", "content": ""})
        assert caught.value.code == 400
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_reading_a_file_out_is_bounded_and_regular_files_only(server: Server) -> None:
    """A session's program makes files meant to exhaust or hang the server: a sparse file of 64 GiB
    (tmpfs counts only written pages), a FIFO that no one writes, a link to /dev/zero."""
    sid = f"big-{os.getpid()}-{server.side.name}"
    traps = "truncate -s 64G huge && mkfifo pipe && ln -s /dev/zero zero && ln -s huge link && echo ok"
    assert server.client().execute({"sessionId": sid, "request": {"cmd": traps, "runtime": "bash"}})["stdout"] == "ok\n"
    try:
        for path, status in [("huge", 413), ("link", 413), ("pipe", 404), ("zero", 404)]:
            started = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as caught:
                _session_call(server, "GET", f"/file?sessionId={sid}&path={path}")
            assert caught.value.code == status, path
            assert time.monotonic() - started < 15, path
            message = json.loads(caught.value.read())["error"]
            assert ("larger than" if status == 413 else "not a regular file") in message, message
        with urllib.request.urlopen(server.url + "/health") as response:
            assert response.status == 200
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_a_session_execution_leaves_no_process_behind_to_spy_on_the_next(server: Server) -> None:
    """A background process of one execution would see the next one's environment and secrets."""
    client = server.client()
    sid = f"bg-{os.getpid()}-{server.side.name}"
    spy = (
        "cat > /sandbox/spy.sh <<'SPY'\n"
        "while :; do cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep TOKEN >> leak; sleep 0.1; done\n"
        "SPY\n"
        "setsid nohup sh /sandbox/spy.sh >/dev/null 2>&1 & echo spying"
    )
    try:
        first = client.execute({"sessionId": sid, "request": {"cmd": spy, "runtime": "bash"}})
        assert first["stdout"] == "spying\n", first
        secret = client.execute(
            {
                "sessionId": sid,
                "request": {"cmd": "sleep 1; echo used", "runtime": "bash", "env": {"TOKEN": "t0p-secret"}},
            }
        )
        assert secret["stdout"] == "used\n"
        check = client.execute(
            {
                "sessionId": sid,
                "request": {
                    "cmd": "cat leak 2>/dev/null; grep -l spy.sh /proc/[0-9]*/cmdline; true",
                    "runtime": "bash",
                },
            }
        )
        assert (check["exitCode"], check["stdout"]) == (0, ""), check
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_the_server_timeout_holds_against_forged_start_lines(server: Server) -> None:
    from tests.integration.test_supervision import FIND_NONCE

    code = FIND_NONCE + "import time\nfor _ in range(150):\n    forge(b'start')\n    time.sleep(0.1)\n"
    started = time.monotonic()
    result = server.client().execute({"request": {"code": code, "runtime": "python", "timeoutMs": 3000}})
    assert (result["exitCode"], result["timedOut"]) == (124, True), result
    assert result["durationMs"] < (3 + 3) * 1000  # from the program's start, on isol8's clock
    assert time.monotonic() - started < 3 + 20  # creating the container comes on top


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["live", "no-stream"])
def test_run_host_on_a_terminal_shows_control_sequences_escaped(server: Server, mode: list[str]) -> None:
    from tests.integration.test_output import SHOW_NASTY, run_in_terminal, without_colours

    status, shown = run_in_terminal(server.engine, "run", "--host", server.url, "--key", KEY, *mode, "-e", SHOW_NASTY)
    assert status == 0, shown[-2000:]
    assert shown.count(rb"\x1b]52;c;aGVsbG8=\x07\x1b]0;pwned-title\x07") == 2, shown
    assert shown.count(b"\x1b[31mRED\x1b[0m") == 2
    rest = without_colours(shown)
    assert not any(b < 0x20 and b != 0x0A for b in rest), rest
    assert b"\xc2\x9b" not in rest


def test_run_host_writes_the_out_file(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    done = run_isol8(server.engine, "run", "--host", server.url, "--key", KEY, "--out", str(out), "-e", "print('é')")
    assert (done.status, done.stdout) == (0, "é\n"), done.stderr
    assert out.read_bytes() == "é\n".encode()


def test_a_sigkilled_server_leaves_no_container(side: Side, tmp_path: Path) -> None:
    """Its watcher (backends/reaper.py) removes the warm pool and the sessions when the server dies unseen."""
    started = _start(side, tmp_path, server={"poolSize": 1})
    try:
        sid = f"k-{os.getpid()}-{side.name}"
        started.client().execute({"sessionId": sid, "request": {"cmd": "true", "runtime": "bash"}})
        server_id = started.id
        assert len(side.instances(server_id)) >= 2  # the pool and the session
        started.proc.kill()
        started.proc.wait()
        deadline = time.monotonic() + 30
        while side.instances(server_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert side.instances(server_id) == []
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
        subprocess.run([side.engine, "rmi", "-f", started.prebuilt], capture_output=True)


def test_keep_background_keeps_a_sessions_processes_when_asked(server: Server) -> None:
    client = server.client()
    sid = f"keep-{os.getpid()}-{server.side.name}"
    # written aside and renamed: a read never sees the file half written
    beat = "while :; do date +%s > b.new; mv b.new beat; sleep 0.2; done"
    serve = f"setsid nohup sh -c '{beat}' >/dev/null 2>&1 & echo started"
    try:
        first = client.execute(
            {"sessionId": sid, "request": {"cmd": serve, "runtime": "bash"}, "options": {"keepBackground": True}}
        )
        assert first["stdout"] == "started\n", first
        old = client.execute({"sessionId": sid, "request": {"cmd": "cat beat", "runtime": "bash"}})["stdout"]
        time.sleep(1.5)
        new = client.execute({"sessionId": sid, "request": {"cmd": "cat beat", "runtime": "bash"}})["stdout"]
        assert int(new) > int(old), (old, new)  # still beating across executions
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")
    with pytest.raises(RemoteError, match="keepBackground only applies to a session"):
        client.execute({"request": {"cmd": "true", "runtime": "bash"}, "options": {"keepBackground": True}})


STOP_AND_STEAL = r"""
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the spy: stop each new process as it appears, read its environment and stdin
        me = os.getpid()
        while True:
            for pid in range(me + 1, me + 400):
                try:
                    os.kill(pid, signal.SIGSTOP)
                except OSError:
                    continue
                try:
                    loot = open(f"/proc/{pid}/environ", "rb").read()
                    with open(f"/proc/{pid}/fd/0", "rb", 0) as f:
                        os.set_blocking(f.fileno(), False)
                        loot += f.read(65536) or b""
                    if b"TOKEN" in loot:
                        open("/sandbox/leak", "ab").write(loot)
                except (OSError, TypeError):
                    pass
                os.kill(pid, signal.SIGCONT)
    os._exit(0)
time.sleep(0.3)
forge(b"exit:137:0")  # then kill the wrapper: its status (137) agrees with the forged line
os.kill(parent, signal.SIGKILL)
"""


def test_a_spy_that_killed_its_wrapper_and_stops_new_processes_steals_nothing(server: Server) -> None:
    """The red team's attack: forge a consistent exit, kill the wrapper before its `kill -1`, then
    stop the next execution's processes to read them. The root sweep after each execution ends it."""
    from tests.integration.test_supervision import FIND_NONCE

    client = server.client()
    sid = f"steal-{os.getpid()}-{server.side.name}"
    try:
        client.execute({"sessionId": sid, "request": {"code": FIND_NONCE + STOP_AND_STEAL, "runtime": "python"}})
        victim = client.execute(
            {
                "sessionId": sid,
                "request": {"code": "import os; print(os.environ['TOKEN'] == 's3cr3t')", "runtime": "python"},
                "options": {"secrets": {"TOKEN": "s3cr3t"}},
            }
        )
        assert (victim["exitCode"], victim["stdout"]) == (0, "True\n"), victim
        check = client.execute(
            {"sessionId": sid, "request": {"code": "import os; print(os.path.exists('/sandbox/leak'))"}}
        )
        assert (check["exitCode"], check["stdout"]) == (0, "False\n"), check
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_executions_in_standby_containers_run_as_the_sandbox_user_without_capabilities(server: Server) -> None:
    """The keeper (PID 1) is root with CAP_KILL and CAP_CHOWN; what a request runs never is."""
    code = (
        "import os\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['CapPrm'].strip(),"
        " status['NoNewPrivs'].strip())\n"
    )
    sid = f"caps-{os.getpid()}-{server.side.name}"
    try:
        for body in ({"request": {"code": code}}, {"sessionId": sid, "request": {"code": code}}):
            result = server.client().execute(body)
            assert result["stdout"].split() == ["1100", "1100", "0000000000000000", "0000000000000000", "1"], result
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


# ---- the original isol8's clients, as its README uses them ------------------------------------

ORIGINAL_OPTIONS = ORIGINAL_CLIENT_OPTIONS  # what its RemoteIsol8 sends with every request (one list)
SETUP = "echo setup-out; echo from-setup > /sandbox/s.txt; id -u > /sandbox/setup-uid"
READS_SETUP = (
    "const fs = require('fs'), path = require('path');"
    "console.log(fs.readFileSync('/sandbox/s.txt', 'utf8').trim(), path.basename(__filename),"
    " fs.readFileSync('/sandbox/setup-uid', 'utf8').trim(), process.getuid())"
)


def test_the_original_clients_request_runs_its_setup_script_and_file_extension(server: Server) -> None:
    body = {
        "request": {"code": READS_SETUP, "runtime": "node", "setupScript": SETUP, "fileExtension": ".cjs"},
        "options": ORIGINAL_OPTIONS,
    }
    result = server.client().execute(body)
    assert (result["exitCode"], result["stdout"]) == (0, "setup-out\nfrom-setup main.cjs 1100 1100\n"), result
    assert {"timestamp", "containerId", "executionId"} <= set(result)
    events = list(server.client().stream(body))
    assert "".join(e["data"] for e in events if e["type"] == "stdout") == result["stdout"]
    assert events[-1] == {"type": "exit", "data": "0"}


def test_a_failing_setup_script_stops_the_execution_with_its_status(server: Server) -> None:
    body = {"request": {"cmd": "echo the code ran", "runtime": "bash", "setupScript": "echo broken >&2; exit 7"}}
    result = server.client().execute(body)
    assert (result["exitCode"], result["stdout"]) == (7, "")
    assert result["stderr"] == "broken\nSetup script failed (exit code 7)\n"


def test_a_timed_out_execution_carries_the_original_marker_too(server: Server) -> None:
    body = {"request": {"cmd": "echo begun; sleep 30", "runtime": "bash", "timeoutMs": 1000}}
    result = server.client().execute(body)
    assert (result["exitCode"], result["timedOut"], result["stdout"]) == (124, True, "begun\n")
    assert result["stderr"].endswith("\n--- EXECUTION TIMED OUT ---")
    events = list(server.client().stream(body))
    assert events[-2:] == [{"type": "error", "data": "EXECUTION TIMED OUT"}, {"type": "exit", "data": "124"}]


def test_each_execution_of_a_session_has_its_own_id_and_the_listing_the_original_fields(server: Server) -> None:
    from datetime import datetime

    sid = f"ids-{os.getpid()}-{server.side.name}"
    try:
        runs = [
            server.client().execute({"sessionId": sid, "request": {"cmd": "true", "runtime": "bash"}}) for _ in "ab"
        ]
        assert runs[0]["executionId"] != runs[1]["executionId"]
        assert runs[0]["containerId"] == runs[1]["containerId"]  # the session's container
        [listed] = [s for s in _session_call(server, "GET", "/sessions")["sessions"] if s["id"] == sid]  # type: ignore[union-attr]
        assert listed["isActive"] is False
        accessed = datetime.fromisoformat(listed["lastAccessedAt"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - accessed).total_seconds()) < 30
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_a_field_the_server_does_not_honour_is_refused_not_ignored(server: Server) -> None:
    for body, status, message in (
        ({"request": {"codeUrl": "https://example.com/a.py"}}, 400, "request.codeUrl"),
        ({"request": {"code": "1"}, "options": {"persist": True}}, 403, "option persist is not allowed"),
        ({"request": {"code": "1"}, "options": {"security": {"seccomp": "unconfined"}}}, 403, "option security"),
        ({"request": {"code": "1"}, "options": {"colour": "red"}}, 400, "unknown option colour"),
    ):
        with pytest.raises(RemoteError, match=message) as caught:
            server.client().execute(body)
        assert caught.value.status == status


def test_the_server_reports_usage_and_a_sessions_executions_each_their_own_cpu(server: Server) -> None:
    from tests.integration.test_usage import BURN_ONE_SECOND

    sid = f"usage-{os.getpid()}-{server.side.name}"
    client = server.client()
    try:
        busy = client.execute({"sessionId": sid, "request": {"code": BURN_ONE_SECOND, "runtime": "python"}})
        idle = client.execute({"sessionId": sid, "request": {"cmd": "true", "runtime": "python"}})
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")
    assert 800 <= busy["usage"]["cpuTimeMs"] <= 1300, busy
    assert idle["usage"]["cpuTimeMs"] < 200, idle  # the execution's own, not the session's so far
    assert idle["usage"]["memoryPeakBytes"] > 0
    fresh = client.execute({"request": {"code": "print(1)", "runtime": "python"}})
    assert fresh["usage"]["cpuTimeMs"] < 200 and fresh["usage"]["memoryPeakBytes"] > 0, fresh


def test_cleanup_while_serving_leaves_its_pool_and_sessions_working(server: Server) -> None:
    server_id = server.id
    sid = f"kept-{os.getpid()}-{server.side.name}"
    client = server.client()
    try:
        client.execute({"sessionId": sid, "request": {"cmd": "echo kept > note.txt", "runtime": "bash"}})
        before = set(server.side.instances(server_id))
        done = server.side.isol8("cleanup", "--force")
        assert done.status == 0, done.stderr
        assert f"whose isol8 process is still running (pid {server.proc.pid} on " in done.stderr
        assert set(server.side.instances(server_id)) == before  # the pool and the session
        warm = client.execute({"request": {"code": "print(1)", "runtime": "python"}})
        assert warm["stdout"] == "1\n"
        assert warm["containerId"] in before  # a warm container from before the cleanup
        kept = client.execute({"sessionId": sid, "request": {"cmd": "cat note.txt", "runtime": "bash"}})
        assert kept["stdout"] == "kept\n"
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_output_paths_come_back_as_base64_files_also_from_a_session(server: Server) -> None:
    body = {
        "request": {
            "code": "open('/sandbox/out.bin', 'wb').write(bytes(range(256)))",
            "runtime": "python",
            "outputPaths": ["/sandbox/out.bin", "/sandbox/none.txt"],
        }
    }
    result = server.client().execute(body)
    assert base64.b64decode(result["files"]["/sandbox/out.bin"]) == bytes(range(256))
    assert result["missingFiles"] == ["/sandbox/none.txt"]
    sid = f"files-{os.getpid()}-{server.side.name}"
    try:
        first = server.client().execute({**body, "sessionId": sid})
        assert set(first["files"]) == {"/sandbox/out.bin"}
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")
    assert list(server.client().stream(body)) == [  # refused, not ignored: a stream has no files
        {"type": "error", "data": "outputPaths: files are returned by POST /execute, not by a stream"},
        {"type": "exit", "data": "125"},
    ]


def test_run_host_writes_output_files_to_the_out_dir(server: Server, tmp_path: Path) -> None:
    code = "open('/sandbox/r.bin', 'wb').write(b'\\x00remote\\xff'); print('ok')"
    done = run_isol8(
        server.engine,
        "run",
        "--host",
        server.url,
        "--key",
        KEY,
        "--output-path",
        "r.bin",
        "--out-dir",
        str(tmp_path),
        "-e",
        code,
    )
    assert (done.status, done.stdout) == (0, "ok\n"), done.stderr
    assert (tmp_path / "r.bin").read_bytes() == b"\x00remote\xff"


# a background process of the session: every 0.1 s, the interfaces it has and whether it reaches the
# host's listener on the engine's default network (where the installer runs), one line each
WATCH_NETWORK = r"""
import os, socket, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("/sandbox/watch.log", "a", buffering=1) as log:
            while True:
                nets = ",".join(sorted(os.listdir("/sys/class/net")))
                try:
                    socket.create_connection((%r, %d), timeout=0.5).close()
                    got = "connected"
                except OSError as exc:
                    got = type(exc).__name__
                log.write(f"{time.time():.3f} {nets} {got}\n")
                time.sleep(0.1)
    os._exit(0)
print("watching")
"""


def _reaches(engine: str, address: str, port: int) -> str:
    """What a container on the default network gets when it connects: the listener is really there."""
    image = "isol8:python" if engine == "docker" else "localhost/isol8:python"
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=5); print('connected')"
    done = subprocess.run([engine, "run", "--rm", image, "python3", "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


def test_a_later_session_request_gets_its_packages_and_no_background_process_gets_network(server: Server) -> None:
    sid = f"pkgs-{os.getpid()}-{server.side.name}"
    client = server.client()
    address = default_gateway(server.engine)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        assert _reaches(server.engine, address, port) == "connected"  # the way out the installer has
        listener.setblocking(False)
        while True:  # the control's connection is not the session's
            try:
                listener.accept()[0].close()
            except BlockingIOError:
                break
        try:
            first = client.execute(
                {
                    "sessionId": sid,
                    "request": {"code": WATCH_NETWORK % (address, port), "runtime": "python"},
                    "options": {"keepBackground": True},
                }
            )
            assert first["stdout"] == "watching\n", first
            began = time.time()
            second = client.execute(
                {
                    "sessionId": sid,
                    "request": {
                        "code": "import six; print(six.__file__)",
                        "runtime": "python",
                        "installPackages": ["six"],
                    },
                }
            )
            ended = time.time()
            assert second["exitCode"] == 0 and second["stdout"].startswith("/sandbox/.local/"), second
            read_log = "import six; print(open('watch.log').read())"
            third = client.execute({"sessionId": sid, "request": {"code": read_log, "runtime": "python"}})
            assert third["exitCode"] == 0, third
            with pytest.raises(BlockingIOError):
                listener.accept()  # nothing in the session ever reached the host
        finally:
            listing = _session_call(server, "GET", "/sessions")
            _session_call(server, "DELETE", f"/session/{sid}")
    lines = [line.split() for line in third["stdout"].splitlines() if line.strip()]
    during = [line for line in lines if began <= float(line[0]) <= ended]
    assert len(during) >= 5, (began, ended, lines[-5:])  # it was watching all through the install
    assert {(nets, got) for _, nets, got in lines} <= {("lo", "OSError"), ("lo", "ConnectionRefusedError")}, lines
    assert not any(got == "connected" for _, _, got in lines)
    (mine,) = [s for s in listing["sessions"] if s["id"] == sid]  # type: ignore[union-attr]
    assert mine["packages"] == ["six"]


def test_a_failed_install_into_a_session_is_an_error_and_the_session_lives_on(server: Server) -> None:
    sid = f"badpkg-{os.getpid()}-{server.side.name}"
    client = server.client()
    try:
        client.execute({"sessionId": sid, "request": {"code": "open('kept', 'w').write('1')", "runtime": "python"}})
        with pytest.raises(RemoteError, match="package install failed") as caught:
            client.execute(
                {
                    "sessionId": sid,
                    "request": {"code": "print(1)", "runtime": "python", "installPackages": ["isol8-no-such-pkg-zz9"]},
                }
            )
        assert caught.value.status == 500
        read_back = "print(open('kept').read())"
        still = client.execute({"sessionId": sid, "request": {"code": read_back, "runtime": "python"}})
        assert still["stdout"] == "1\n"  # the session itself is untouched
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_a_package_asked_again_with_another_version_replaces_it_in_the_session(server: Server) -> None:
    sid = f"pkgver-{os.getpid()}-{server.side.name}"
    client = server.client()
    ask = "import six; print(six.__version__)"
    try:
        first = client.execute(
            {"sessionId": sid, "request": {"code": ask, "runtime": "python", "installPackages": ["six==1.16.0"]}}
        )
        assert first["stdout"] == "1.16.0\n", first
        # the session's own run-time installs, reinstalled with this one: six==1.16.0 gives way
        second = client.execute(
            {"sessionId": sid, "request": {"code": ask, "runtime": "python", "installPackages": ["six==1.17.0"]}}
        )
        assert second["stdout"] == "1.17.0\n", second
        listing = _session_call(server, "GET", "/sessions")
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")
    (mine,) = [s for s in listing["sessions"] if s["id"] == sid]  # type: ignore[union-attr]
    assert mine["packages"] == ["six==1.17.0"]


def test_packages_that_do_not_fit_beside_the_sessions_files_leave_the_session_as_it_was(server: Server) -> None:
    """The installer's sandbox is as large as the session's but empty: the tree is made, then found
    not to fit in the session beside its files, which are all still there afterwards."""
    sid = f"pkgfull-{os.getpid()}-{server.side.name}"
    fill = "open('filler', 'wb').write(b'x' * (2 * 1024 * 1024 - 48 * 1024)); print('full')"
    _a_refused_install_keeps_the_files(
        server, sid, fill, {"sandboxSize": "2m"}, "could not be unpacked", 2 * 1024**2 - 48 * 1024
    )


def _a_refused_install_keeps_the_files(
    server: Server, sid: str, fill: str, options: dict[str, str], refusal: str, size: int
) -> None:
    """Fill the session's sandbox (it prints full), then ask for six: refused (500), the filler all there."""
    client = server.client()
    try:
        first = client.execute({"sessionId": sid, "request": {"code": fill, "runtime": "python"}, "options": options})
        assert first["stdout"] == "full\n", first
        with pytest.raises(RemoteError, match=refusal) as caught:
            client.execute(
                {"sessionId": sid, "request": {"code": "print(1)", "runtime": "python", "installPackages": ["six"]}}
            )
        assert caught.value.status == 500
        left = "import os; print(os.path.getsize('filler'), sorted(os.listdir('.')))"
        still = client.execute({"sessionId": sid, "request": {"code": left, "runtime": "python"}})
        assert still["stdout"] == f"{size} ['filler', 'main.py']\n", still
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")


def test_packages_that_would_exhaust_the_memory_limit_leave_the_session_as_it_was(server: Server) -> None:
    """/sandbox is a tmpfs the memory limit counts: a session whose files take nearly all of its
    memory still has room in /sandbox, but unpacking a tree there would end in an OOM kill that
    takes the session with it. The room in memory is checked first, and the session keeps its files."""
    sid = f"pkgmem-{os.getpid()}-{server.side.name}"
    # python gives its memory back before head fills /sandbox (exec), or the fill itself is the OOM
    fill = "import os; os.execv('/bin/sh', ['sh', '-c', 'head -c 56m /dev/zero > filler && echo full'])"
    options = {"sandboxSize": "256m", "memoryLimit": "64m"}
    _a_refused_install_keeps_the_files(
        server, sid, fill, options, "could not be unpacked: .*memory limit", 56 * 1024**2
    )


def test_a_session_that_keeps_its_processes_keeps_no_watchdog_of_an_ended_execution(server: Server) -> None:
    """Each execution's in-container watchdog waits out its time limit; a keepBackground session
    keeps the program's processes, but an ended execution's watchdog must go with it, or quick
    executions would pile watchdogs up to the session's pids limit (and one that fired would kill
    what the session keeps)."""
    sid = f"watchdogs-{os.getpid()}-{server.side.name}"
    # the wrapper and its watchdog (a subshell of it) by their command line; the kept sleeps by theirs
    count = (
        "w=0 s=0; for f in /proc/[0-9]*/cmdline; do line=$(tr '\\0' ' ' <\"$f\" 2>/dev/null); "
        "case $line in *'read -r nonce tarsize'*) w=$((w + 1)) ;; 'sleep 600 ') s=$((s + 1)) ;; esac; done; echo $w $s"
    )
    body = {
        "sessionId": sid,
        "request": {"cmd": "sleep 600 >/dev/null 2>&1 &", "runtime": "bash"},
        "options": {"keepBackground": True},
    }
    try:
        for _ in range(3):
            assert server.client().execute(body)["exitCode"] == 0
        counted = server.client().execute({**body, "request": {"cmd": count, "runtime": "bash"}})
        # this execution's wrapper and watchdog, none of the three before; their three sleeps kept
        assert counted["stdout"] == "2 3\n", counted
    finally:
        _session_call(server, "DELETE", f"/session/{sid}")
