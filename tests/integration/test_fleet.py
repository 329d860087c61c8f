"""`isol8 serve` replicas of one fleet behind HAProxy (examples/haproxy.cfg, run as shipped), on both engines.

Sessions live in the engine: one made through a replica is used, filed, listed and deleted
through the other; 50 mixed executions through the balancer all succeed; an idle session
expires whichever replica sees it; a session's programs can neither read nor change its record;
a replica stopped gracefully loses no execution in flight."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ISOL8
from tests.integration.ports import free_port

KEY = "fleet-key-" + os.urandom(8).hex()
HAPROXY_CFG = Path(__file__).resolve().parents[2] / "examples" / "haproxy.cfg"
IDLE_MS = 15000


def call(url: str, method: str, path: str, body: object | None = None, *, timeout: float = 300) -> tuple[int, Any, str]:
    """(status, JSON answer, the replica HAProxy named), also for an error status (HAProxy's own: its text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers.get("X-Isol8-Replica", "")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        return exc.code, answer, exc.headers.get("X-Isol8-Replica", "")


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)


@dataclass
class Fleet:
    name: str
    engine: str
    balancer: str
    replicas: list[Replica]
    haproxy: subprocess.Popen[bytes]
    served: Counter[str] = field(default_factory=Counter)

    def session_containers(self) -> list[str]:
        done = subprocess.run(
            [self.engine, "ps", "-a", "-q", "--filter", f"label=org.isol8.server.fleet={self.name}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.split()


def _replica(engine: str, tmp: Path, fleet: str) -> Replica:
    tmp.mkdir()
    config = {"maxConcurrent": 4, "server": {"fleet": fleet, "drainMs": 3000, "sessionIdleMs": IDLE_MS, "poolSize": 1}}
    (tmp / "isol8.config.json").write_text(json.dumps(config))
    port, log = free_port(), tmp / "serve.log"
    proc = subprocess.Popen(
        [ISOL8, "--engine", engine, "serve", "--port", str(port), "--key", KEY],
        cwd=tmp,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Replica(f"http://127.0.0.1:{port}", proc, log)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            if call(url, "GET", "/health?ready=1", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{url} did not become ready:\n{log.read_text() if log.exists() else ''}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def fleet(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(haproxy):
        pytest.fail("haproxy is not installed (scripts/test-all installs the Debian package)")
    tmp = tmp_path_factory.mktemp("fleet")
    name = f"test-{os.getpid()}-{engine}"
    replicas = [_replica(engine, tmp / f"replica{i}", name) for i in (1, 2)]
    port = free_port()
    env = {
        **os.environ,
        "ISOL8_LB_BIND": f"127.0.0.1:{port}",
        **{f"ISOL8_REPLICA_{i}": r.url.removeprefix("http://") for i, r in enumerate(replicas, 1)},
    }
    lb_log = tmp / "haproxy.log"
    proc = subprocess.Popen(
        [haproxy, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=lb_log.open("wb"), stderr=subprocess.STDOUT
    )
    made = Fleet(name, engine, f"http://127.0.0.1:{port}", replicas, proc)
    try:
        for replica in replicas:
            _wait_ready(replica.url, replica.proc, replica.log)
        _wait_until_both_up(made, lb_log)
        yield made
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for replica in replicas:
            replica.stop()
        subprocess.run([engine, "rm", "-f", *made.session_containers()], capture_output=True, timeout=120)


def _wait_until_both_up(fleet: Fleet, lb_log: Path) -> None:
    """HAProxy's checks take a moment (rise 2): until then one replica may look down."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = {call(fleet.balancer, "GET", "/health", timeout=5)[2] for _ in range(4)}
        if seen == {"replica1", "replica2"}:
            return
        time.sleep(0.5)
    raise AssertionError(f"HAProxy did not reach both replicas:\n{lb_log.read_text()}")


def _execute(url: str, sid: str | None, cmd: str, runtime: str = "bash") -> tuple[int, Any, str]:
    body: dict[str, Any] = {"request": {"cmd" if runtime == "bash" else "code": cmd, "runtime": runtime}}
    if sid is not None:
        body["sessionId"] = sid
    return call(url, "POST", "/execute", body)


def test_a_session_made_through_one_replica_is_used_filed_and_deleted_through_the_other(fleet: Fleet) -> None:
    one, two = (r.url for r in fleet.replicas)
    sid = "across"
    status, made, _ = _execute(one, sid, "echo made > note.txt; echo $$ > /tmp/pid; echo ok")
    assert (status, made["stdout"]) == (200, "ok\n"), made
    status, used, _ = _execute(two, sid, "cat note.txt")
    assert (status, used["stdout"]) == (200, "made\n"), used  # the same container, through the other replica
    payload = base64.b64encode(b"filed through two").decode()
    assert call(two, "POST", "/file", {"sessionId": sid, "path": "in.txt", "content": payload})[:2] == (
        200,
        {"ok": True},
    )
    status, read, _ = call(one, "GET", f"/file?sessionId={sid}&path=in.txt")
    assert (status, base64.b64decode(read["content"])) == (200, b"filed through two")
    listed = {s["id"]: s for s in call(two, "GET", "/sessions")[1]["sessions"]}
    assert listed[sid]["runtime"] == "bash" and listed[sid]["busy"] is False
    assert {s["id"] for s in call(one, "GET", "/sessions")[1]["sessions"]} == set(listed)
    assert call(two, "DELETE", f"/session/{sid}")[1] == {"ok": True, "removed": True}
    assert sid not in {s["id"] for s in call(one, "GET", "/sessions")[1]["sessions"]}
    assert call(one, "GET", f"/file?sessionId={sid}&path=in.txt")[0] == 404  # gone for the replica that made it
    status, anew, _ = _execute(one, sid, "cat note.txt 2>/dev/null || echo fresh")
    assert (status, anew["stdout"]) == (200, "fresh\n")
    call(one, "DELETE", f"/session/{sid}")


def test_executions_on_one_session_take_turns_across_replicas(fleet: Fleet) -> None:
    one, two = (r.url for r in fleet.replicas)
    sid = "turns"
    assert _execute(one, sid, "echo 0 > n")[0] == 200
    step = "v=$(cat n); sleep 0.3; echo $((v + 1)) > n; cat n"  # loses counts unless executions take turns
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: _execute((one, two)[i % 2], sid, step), range(6)))
    assert all(status == 200 for status, _, _ in answers), answers
    assert sorted(int(a["stdout"]) for _, a, _ in answers) == [1, 2, 3, 4, 5, 6]
    call(two, "DELETE", f"/session/{sid}")


def test_fifty_mixed_executions_through_the_balancer_all_succeed_on_both_replicas(fleet: Fleet) -> None:
    def one(i: int) -> tuple[str, str]:
        kind = i % 5
        if kind == 0:
            status, answer, replica = _execute(fleet.balancer, None, f"print({i} * 2)", "python")
            expected = f"{i * 2}\n"
        elif kind == 1:
            status, answer, replica = _execute(fleet.balancer, None, f"console.log({i})", "node")
            expected = f"{i}\n"
        elif kind == 2:  # a session of its own, made and used through whichever replica
            sid = f"mixed-{i}"
            _execute(fleet.balancer, sid, f"echo {i} > mine")
            status, answer, replica = _execute(fleet.balancer, sid, "cat mine")
            expected = f"{i}\n"
        elif kind == 3:  # a session several requests share
            status, answer, replica = _execute(fleet.balancer, "shared", f"echo {i} >> all; echo {i}")
            expected = f"{i}\n"
        else:
            status, answer, replica = _execute(fleet.balancer, None, f"echo {i}")
            expected = f"{i}\n"
        assert status == 200 and answer["stdout"] == expected, (i, status, answer)
        return replica, answer["stdout"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(50)))
    served = Counter(replica for replica, _ in results)
    assert set(served) == {"replica1", "replica2"}, served
    status, shared, _ = _execute(fleet.balancer, "shared", "sort -n all | tr '\\n' ' '")
    assert shared["stdout"].split() == [str(i) for i in range(3, 50, 5)]  # none lost, whichever replica ran it


def test_an_idle_session_expires_through_whichever_replica_sees_it(fleet: Fleet) -> None:
    one, two = (r.url for r in fleet.replicas)
    for sid in ("idle-a", "idle-b"):
        assert _execute(one, sid, "true")[0] == 200
    deadline = time.monotonic() + IDLE_MS / 1000 * 4
    while time.monotonic() < deadline:
        assert _execute(two, "idle-b", "true")[0] == 200  # kept in use through the other replica
        listed = {s["id"] for s in call(two, "GET", "/sessions")[1]["sessions"]}
        if "idle-a" not in listed:
            break
        time.sleep(1)
    assert "idle-a" not in listed and "idle-b" in listed
    call(one, "DELETE", "/session/idle-b")


# What a session's program tries against its record (/run/isol8): each attempt's exit status, and
# what it could tell of the folder without entering it
PROBE_RECORD = r"""
import json, os, subprocess
fake = json.dumps({"installed": ["forged==6.6.6"], "env": {"PYTHONPATH": "/tmp/forged"}})
attempts = {
    "cat": ["cat", "/run/isol8/state"],
    "ls": ["ls", "-A", "/run/isol8"],
    "touch": ["touch", "/run/isol8/x"],
    "write": ["bash", "-c", 'printf %s "$1" > /run/isol8/state', "-", fake],
    "replace": ["bash", "-c", 'printf %s "$1" > /tmp/state && mv -f /tmp/state /run/isol8/state', "-", fake],
    "idle": ["touch", "-d", "@0", "/run/isol8/used"],
}
st = os.stat("/run/isol8")
print(json.dumps({
    "uid": os.getuid(),
    "owner": st.st_uid,
    "mode": oct(st.st_mode & 0o777),
    "attempts": {k: subprocess.run(a, capture_output=True).returncode for k, a in attempts.items()},
}))
"""


def _session_container(fleet: Fleet, sid: str) -> str:
    done = subprocess.run(
        [fleet.engine, "ps", "-q", "--filter", f"label=org.isol8.server.fleet={fleet.name}"]
        + ["--filter", f"label=org.isol8.session.id={sid}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (container,) = done.stdout.split()
    return container


def _as_root(fleet: Fleet, container: str, *argv: str) -> str:
    """What argv prints, run as root in the container: the engine's view, not a program's."""
    done = subprocess.run(
        [fleet.engine, "exec", "--user", "0:0", container, *argv], capture_output=True, text=True, timeout=60
    )
    return done.stdout


def test_a_sessions_programs_can_neither_read_nor_change_its_record(fleet: Fleet) -> None:
    """/run/isol8 is root's alone: a session's program can neither list, read, create nor replace
    anything in it, and the other replica's next turn still sees the real record (its packages)."""
    one, two = (r.url for r in fleet.replicas)
    sid = "record"

    def python(url: str, code: str, **request: Any) -> dict[str, Any]:
        body = {"sessionId": sid, "request": {"code": code, "runtime": "python", **request}}
        status, answer, _ = call(url, "POST", "/execute", body)
        assert status == 200 and answer["exitCode"] == 0, answer
        return dict(answer)

    try:
        python(one, "print('made')")
        python(one, "import six; print(six.__version__)", installPackages=["six"])  # a run-time install: recorded
        probe = json.loads(python(one, PROBE_RECORD)["stdout"])
        assert (probe["uid"], probe["owner"], probe["mode"]) == (1100, 0, "0o700"), probe
        assert all(code != 0 for code in probe["attempts"].values()), probe
        assert python(two, "import six; print(six.__file__)")["stdout"].startswith("/sandbox/"), "lost its packages"
        (listed,) = [s for s in call(two, "GET", "/sessions")[1]["sessions"] if s["id"] == sid]
        assert listed["packages"] == ["six"] and listed["idleSeconds"] < IDLE_MS / 1000, listed
        container = _session_container(fleet, sid)
        assert "x" not in _as_root(fleet, container, "ls", "-A", "/run/isol8").split()
        record = json.loads(_as_root(fleet, container, "cat", "/run/isol8/state"))
        assert [spec.split("=")[0] for spec in record["installed"]] == ["six"], record
        assert "/tmp/forged" not in json.dumps(record["env"]), record
    finally:
        call(one, "DELETE", f"/session/{sid}")


def test_stopping_a_replica_gracefully_loses_no_execution_in_flight(fleet: Fleet) -> None:
    """Replica 2 gets SIGTERM while executions run on both: each of them, and each request sent
    while it drains, succeeds; its sessions stay for the other replica; it exits cleanly."""
    one, two = fleet.replicas
    assert _execute(two.url, "outlives", "echo kept > f")[0] == 200
    slow = "sleep 4; echo done"

    def through_balancer(i: int) -> tuple[int, str, str]:
        time.sleep(0.25 * i)
        status, answer, replica = _execute(fleet.balancer, None, slow if i < 6 else "echo done")
        return status, (answer or {}).get("stdout", ""), replica

    with ThreadPoolExecutor(14) as pool:
        direct = pool.submit(_execute, two.url, None, slow)  # in flight on the replica that stops
        answers = [pool.submit(through_balancer, i) for i in range(14)]
        time.sleep(1.5)
        two.proc.send_signal(signal.SIGTERM)
        results = [a.result() for a in answers]
        status, answer, _ = direct.result()
    assert (status, answer["stdout"]) == (200, "done\n"), answer
    assert [(s, out) for s, out, _ in results] == [(200, "done\n")] * 14, results
    assert two.proc.wait(timeout=90) == 0, two.log.read_text()
    status, kept, _ = _execute(one.url, "outlives", "cat f")
    assert (status, kept["stdout"]) == (200, "kept\n")  # the fleet's session outlived the replica
    assert _execute(fleet.balancer, None, "echo still")[1]["stdout"] == "still\n"
    call(one.url, "DELETE", "/session/outlives")
