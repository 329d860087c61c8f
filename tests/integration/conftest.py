"""Real-engine fixtures: every test runs once on docker and once on podman.

An engine that does not answer skips its tests locally, and fails them when CI is set
(or with --no-engine-skip), so a green CI run means both engines really ran.
"""

from __future__ import annotations

import http.server
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sh

ENGINES = ("docker", "podman")
ISOL8 = str(Path(sys.executable).with_name("isol8"))
VERSION_FORMAT = {"docker": "{{.Server.Version}}", "podman": "{{.Client.Version}}"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


def _answers(engine: str) -> str | None:
    try:
        done = subprocess.run(
            [engine, "version", "--format", VERSION_FORMAT[engine]], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0 or not done.stdout.strip():
        return done.stderr.strip() or f"{engine} version printed nothing"
    return None


def require_engine(name: str, config: pytest.Config) -> str:
    """name, if that engine answers; else a skip, or a failure in CI."""
    problem = _answers(name)
    if problem is not None:
        message = f"{name} is not usable: {problem}"
        if os.environ.get("CI") or config.getoption("--no-engine-skip"):
            pytest.fail(message + " (CI requires both engines: run scripts/ensure-engines)")
        pytest.skip(message)
    return name


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return require_engine(request.param, request.config)


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str
    seconds: float


Isol8 = Callable[..., Result]


def run_isol8(engine: str, *args: str, **kwargs: Any) -> Result:
    """Drive the installed `isol8 --engine ENGINE` command as a shell user would."""
    return run_with(["--engine", engine], *args, **kwargs)


def run_with(
    options: list[str],
    *args: str,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 180,
) -> Result:
    """Drive the installed `isol8` command, with its global `options`, as a shell user would."""
    command = sh.Command(ISOL8)
    started = time.monotonic()
    done = command(
        *options,
        *args,
        _ok_code=range(256),
        _return_cmd=True,
        _in=stdin,
        _env={**os.environ, **(env or {})},
        _cwd=str(cwd) if cwd else None,
        _timeout=timeout,
    )
    return Result(
        done.exit_code,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
        time.monotonic() - started,
    )


@pytest.fixture
def isol8(engine: str) -> Isol8:
    def run(*args: str, **kwargs: object) -> Result:
        return run_isol8(engine, *args, **kwargs)  # type: ignore[arg-type]

    return run


def isol8_containers(engine: str, pid: int | None = None) -> list[str]:
    """isol8's containers on engine; with pid, only those the isol8 process `pid` started."""
    label = "org.isol8.run.id" if pid is None else f"org.isol8.run.pid={pid}"
    done = subprocess.run(
        [engine, "ps", "-a", "-q", "--filter", f"label={label}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def assert_no_containers(engine: str, within: float = 5.0, pid: int | None = None) -> None:
    """docker removes --rm containers asynchronously: allow a moment before calling it a leak."""
    deadline = time.monotonic() + within
    while True:
        left = isol8_containers(engine, pid)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == [], f"{engine} containers left behind: {left}"


@pytest.fixture
def no_leftovers(engine: str) -> Iterator[None]:
    yield
    assert_no_containers(engine)


def default_gateway(engine: str) -> str:
    """The host's address on the engine's default network, which its containers reach: as inspected, else the
    subnet's first address (a freshly started docker may report no gateway)."""
    import ipaddress
    import json

    if engine == "docker":
        argv = ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"]
    else:
        argv = ["podman", "network", "inspect", "podman", "--format", "{{json .Subnets}}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first = {key.lower(): value for key, value in json.loads(done.stdout)[0].items()}
    return str(first.get("gateway") or next(ipaddress.ip_network(first["subnet"]).hosts()))


def watcher_of(pid: int) -> int | None:
    """The pid of the watcher (isol8/backends/reaper.py) that the isol8 process `pid` started, if any."""
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
            cmdline = (child / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"isol8-reaper" in cmdline:
            return int(child.name)
    return None


def start_run(engine: str, *args: str) -> subprocess.Popen[str]:
    """`isol8 run ARGS` in the background, its output piped (text)."""
    return subprocess.Popen(
        [ISOL8, "--engine", engine, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.headers.get('Host', '?')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: http.server.ThreadingHTTPServer) -> int:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """An HTTP and an HTTPS server on every address of this machine: (http port, https port)."""
    tmp = tmp_path_factory.mktemp("tls")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=allowed.test", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    plain = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)
    tls = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    yield _serve(plain), _serve(tls)
    plain.shutdown()
    tls.shutdown()
