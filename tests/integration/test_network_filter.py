"""--net filtered on both engines: only the allowed hosts, through isol8's egress proxy, and nothing else.

Stand-in hosts are HTTP and HTTPS servers the tests start on this machine (conftest's stand_ins), reached from the
proxy's container through the engine's default gateway: names like allowed.test are given that
address by network.hosts, and network.allowPrivate lets the proxy connect to it (a private
address). Every attack is tried from inside the sandbox, as hostile code would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.integration.conftest import (
    ISOL8,
    Isol8,
    assert_no_containers,
    default_gateway,
    isol8_containers,
    run_isol8,
    watcher_of,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")
NAMES = ("allowed.test", "other.test", "denied.test", "api.wild.test", *(f"host{i}.test" for i in range(20)))


class Hosts(NamedTuple):
    gateway: str  # this machine, as the proxy's container reaches it
    http: int
    https: int


@pytest.fixture
def hosts(engine: str, stand_ins: tuple[int, int]) -> Hosts:
    return Hosts(default_gateway(engine), *stand_ins)


def _config(tmp_path: Path, hosts: Hosts, *, private: bool = True, **extra: object) -> str:
    network = {
        "hosts": dict.fromkeys(NAMES, hosts.gateway),
        **({"allowPrivate": [f"{hosts.gateway}/32"]} if private else {}),
    }
    path = tmp_path / "filtered.json"
    path.write_text(json.dumps({"network": network, **extra}))
    return str(path)


# the urls in $URLS; each line printed: the url, then its status or the error
FETCH = r"""
import os, ssl, urllib.request
unverified = ssl._create_unverified_context()
for url in os.environ["URLS"].split():
    try:
        with urllib.request.urlopen(url, timeout=10, context=unverified) as r:
            print(url, r.status, r.read().decode())
    except Exception as exc:
        print(url, "ERR", exc)
"""


def _fetch(isol8: Isol8, config: str, args: list[str], urls: list[str]) -> tuple[dict[str, str], dict]:
    done = isol8("--config", config, "run", "--json", *args, "--env", f"URLS={' '.join(urls)}", "-e", FETCH)
    assert done.status == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    lines = dict(line.split(" ", 1) for line in result["stdout"].splitlines())
    return lines, result


def _verdicts(result: dict) -> list[tuple[str, str]]:
    return [(entry["target"], entry["verdict"]) for entry in result["network"]["log"]]


def test_allowed_hosts_are_reached_over_http_and_https_and_every_other_one_is_refused(
    isol8: Isol8, hosts: Hosts, tmp_path: Path
) -> None:
    p, s = hosts.http, hosts.https
    urls = [
        f"http://allowed.test:{p}/",
        f"https://allowed.test:{s}/",
        f"http://api.wild.test:{p}/",
        f"http://other.test:{p}/",
        f"https://other.test:{s}/",
        f"http://denied.test:{p}/",
        f"http://wild.test:{p}/",
        f"http://api.wild.test:{s}/",  # allowed on another port only
    ]
    allowed = [f"allowed.test:{p}", f"allowed.test:{s}", f"*.wild.test:{p}", f"denied.test:{p}"]
    args = [*(a for host in allowed for a in ("--allow", host)), "--deny", "denied.test"]
    got, result = _fetch(isol8, _config(tmp_path, hosts), args, urls)

    assert got[urls[0]] == f"200 hello from allowed.test:{p}"
    assert got[urls[1]] == f"200 hello from allowed.test:{s}"  # through a CONNECT tunnel
    assert got[urls[2]] == f"200 hello from api.wild.test:{p}"
    assert got[urls[3]] == "ERR HTTP Error 403: Forbidden"
    assert got[urls[4]].startswith("ERR") and "403" in got[urls[4]]
    assert got[urls[5]] == "ERR HTTP Error 403: Forbidden"
    assert got[urls[6]] == "ERR HTTP Error 403: Forbidden"  # *.wild.test is the names below it only
    assert got[urls[7]] == "ERR HTTP Error 403: Forbidden"
    assert _verdicts(result) == [
        (urls[0], "allowed"),
        (f"allowed.test:{s}", "allowed"),
        (urls[2], "allowed"),
        (urls[3], "not-allowed"),
        (f"other.test:{s}", "not-allowed"),
        (urls[5], "denied"),
        (urls[6], "not-allowed"),
        (urls[7], "not-allowed"),
    ]


def test_an_empty_allowlist_reaches_nothing(isol8: Isol8, hosts: Hosts, tmp_path: Path) -> None:
    url = f"http://allowed.test:{hosts.http}/"
    got, result = _fetch(isol8, _config(tmp_path, hosts), ["--net", "filtered"], [url])
    assert got[url] == "ERR HTTP Error 403: Forbidden"
    assert _verdicts(result) == [(url, "not-allowed")]


def test_an_allowed_name_that_resolves_to_a_private_address_is_refused(
    isol8: Isol8, hosts: Hosts, tmp_path: Path
) -> None:
    urls = [f"http://allowed.test:{hosts.http}/", f"https://allowed.test:{hosts.https}/"]
    allowed = ["--allow", f"allowed.test:{hosts.http}", "--allow", f"allowed.test:{hosts.https}"]
    got, result = _fetch(isol8, _config(tmp_path, hosts, private=False), allowed, urls)
    assert got[urls[0]] == "ERR HTTP Error 403: Forbidden"
    assert "403" in got[urls[1]]
    assert _verdicts(result) == [(urls[0], "private-address"), (f"allowed.test:{hosts.https}", "private-address")]


# every way out but the proxy: each line "what: result"
BYPASS = r"""
import os, socket, urllib.request
gateway, port = os.environ["TARGET"].split(":")
port = int(port)
def attempt(what, do):
    try:
        do()
        print(what + ": REACHED")
    except Exception as exc:
        print(what + ": failed", type(exc).__name__)
def connect(address, family=socket.AF_INET):
    def do():
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(address)
    return do
attempt("gateway", connect((gateway, port)))
attempt("metadata", connect(("169.254.169.254", 80)))
attempt("public ip", connect(("203.0.113.80", 443)))
attempt("ipv6", connect(("2001:db8::1", 443, 0, 0), socket.AF_INET6))
attempt("dns", lambda: socket.getaddrinfo("allowed.test", port))
attempt("raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
    del os.environ[name]
url = "http://" + gateway + ":" + str(port) + "/"
attempt("no proxy", lambda: urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=3))
attempt("proxy to an ip", lambda: urllib.request.build_opener(
    urllib.request.ProxyHandler({"http": "http://127.0.0.1:3128"})).open(url, timeout=3))
# requests to the proxy itself for an allowed host and port, in forms it must refuse
def ask(what, request):
    with socket.create_connection(("127.0.0.1", 3128), timeout=5) as s:
        s.sendall(request.encode())
        print(what + ": status", s.recv(100).split(b" ")[1].decode())
ask("manager", "GET cache_object://allowed.test/info HTTP/1.0\r\n\r\n")
ask("ftp", f"GET ftp://allowed.test:{port}/ HTTP/1.0\r\n\r\n")
ask("other port", "CONNECT allowed.test:22 HTTP/1.0\r\n\r\n")
"""


def test_nothing_but_the_proxy_leads_out(isol8: Isol8, hosts: Hosts, tmp_path: Path) -> None:
    config = _config(tmp_path, hosts)
    target = f"TARGET={hosts.gateway}:{hosts.http}"
    allowed = f"allowed.test:{hosts.http}"
    done = isol8("--config", config, "run", "--allow", allowed, "--env", target, "-e", BYPASS)
    assert done.status == 0, done.stderr
    results = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    asked = {name: results.pop(name, None) for name in ("manager", "ftp", "other port")}
    assert asked == {"manager": "status 403", "ftp": "status 403", "other port": "status 403"}, done.stdout
    assert set(results) == {
        "gateway",
        "metadata",
        "public ip",
        "ipv6",
        "dns",
        "raw socket",
        "no proxy",
        "proxy to an ip",
    }, done.stdout
    assert all(outcome.startswith("failed") for outcome in results.values()), done.stdout
    assert results["raw socket"] == "failed PermissionError"
    assert results["proxy to an ip"] == "failed HTTPError"  # the proxy's own refusal: the IP is no allowed name


def _egress_leftovers(engine: str) -> list[str]:
    done = subprocess.run(
        [engine, "volume", "ls", "-q", "--filter", "label=org.isol8.egress.of"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_a_timed_out_filtered_run_leaves_no_proxy_relay_or_volume(
    isol8: Isol8, engine: str, hosts: Hosts, tmp_path: Path
) -> None:
    done = isol8(
        "--config",
        _config(tmp_path, hosts),
        "run",
        "--allow",
        "allowed.test",
        "--timeout",
        "2s",
        "-e",
        "while True: pass",
    )
    assert done.status == 124, done.stderr
    assert_no_containers(engine)
    assert _egress_leftovers(engine) == []


def _started(engine: str, config: str) -> subprocess.Popen[str]:
    code = "print('ready', flush=True)\nimport time; time.sleep(120)"
    proc = subprocess.Popen(
        [
            ISOL8,
            "--engine",
            engine,
            "--config",
            config,
            "run",
            "--allow",
            "allowed.test",
            "--timeout",
            "2m",
            "-e",
            code,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    assert len(isol8_containers(engine, proc.pid)) == 3  # the sandbox, its proxy and its relay
    return proc


def test_sigint_removes_the_proxy_the_relay_and_the_volume(engine: str, hosts: Hosts, tmp_path: Path) -> None:
    proc = _started(engine, _config(tmp_path, hosts))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert isol8_containers(engine, proc.pid) == []
    assert _egress_leftovers(engine) == []


def test_a_sigkilled_isol8_leaves_nothing_once_its_watcher_or_cleanup_has_run(
    engine: str, hosts: Hosts, tmp_path: Path
) -> None:
    config = _config(tmp_path, hosts)
    proc = _started(engine, config)
    proc.kill()
    proc.wait()
    assert_no_containers(engine, within=20, pid=proc.pid)  # the watcher outside the sandbox
    deadline = time.monotonic() + 20
    while _egress_leftovers(engine) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _egress_leftovers(engine) == []

    proc = _started(engine, config)  # now with the watcher killed too: `isol8 cleanup` is the backstop
    watcher = watcher_of(proc.pid)
    assert watcher is not None
    os.kill(watcher, signal.SIGKILL)
    proc.kill()
    proc.wait()
    assert len(isol8_containers(engine, proc.pid)) == 3
    done = run_isol8(engine, "cleanup", "--force")
    assert done.status == 0, done.stderr
    assert "1 volume(s)" in done.stdout, done.stdout
    assert isol8_containers(engine, proc.pid) == []
    assert _egress_leftovers(engine) == []


def test_twenty_parallel_filtered_runs_each_reach_only_their_own_host(
    engine: str, hosts: Hosts, tmp_path: Path
) -> None:
    config = _config(tmp_path, hosts)

    def one(i: int) -> tuple[int, dict[str, str]]:
        own, neighbour = f"http://host{i}.test:{hosts.http}/", f"http://host{(i + 1) % 20}.test:{hosts.http}/"
        done = run_isol8(
            engine,
            "--config",
            config,
            "run",
            "--allow",
            f"host{i}.test:{hosts.http}",
            "--env",
            f"URLS={own} {neighbour}",
            "-e",
            FETCH,
            timeout=600,
        )
        assert done.status == 0, done.stderr
        got = dict(line.split(" ", 1) for line in done.stdout.splitlines())
        return i, {"own": got[own], "neighbour": got[neighbour]}

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(one, range(20)))
    for i, got in outcomes:
        assert got == {
            "own": f"200 hello from host{i}.test:{hosts.http}",
            "neighbour": "ERR HTTP Error 403: Forbidden",
        }, i


def _index_host() -> str:
    """The host of the package index pip is configured with (pip's own default otherwise)."""
    from pip._internal.models.index import PyPI

    url = os.environ.get("PIP_INDEX_URL") or PyPI.simple_url
    return urllib.parse.urlparse(url).hostname or ""


def test_an_install_works_under_filtered_and_the_code_still_reaches_only_its_hosts(
    isol8: Isol8, hosts: Hosts, tmp_path: Path
) -> None:
    code = FETCH + "\nimport six; print('six', six.__version__ != '')\n"
    url = f"http://allowed.test:{hosts.http}/"
    done = isol8(
        "--config",
        _config(tmp_path, hosts),
        "run",
        "--net",
        "filtered",
        "--allow",
        _index_host(),
        "--install",
        "six",
        "--env",
        f"URLS={url}",
        "-e",
        code,
        timeout=900,
    )
    assert done.status == 0, done.stderr
    assert done.stdout.splitlines() == [f"{url} ERR HTTP Error 403: Forbidden", "six True"]


def test_the_server_takes_the_original_clients_filtered_request_within_its_allowed_hosts(
    engine: str, hosts: Hosts, tmp_path: Path
) -> None:
    from tests.integration.test_server import KEY, Side, _post, _start, _stop

    network = {"hosts": dict.fromkeys(NAMES, hosts.gateway), "allowPrivate": [f"{hosts.gateway}/32"]}
    ceiling = [f"allowed.test:{hosts.http}", f"*.wild.test:{hosts.https}"]  # the stand-ins' ports
    server = _start(Side.of_engine(engine), tmp_path, network=network, server={"allowedHosts": ceiling})
    try:
        url = f"http://allowed.test:{hosts.http}/ https://api.wild.test:{hosts.https}/ http://other.test:{hosts.http}/"
        asked = {
            "request": {"code": FETCH, "runtime": "python", "env": {"URLS": url}},
            "options": {
                "network": "filtered",
                "networkFilter": {"whitelist": [f"allowed.test:{hosts.http}", f"api.wild.test:{hosts.https}"]},
            },
        }
        auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        status, result = _post(server, "/execute", asked, auth)
        assert status == 200, result
        assert str(result["stdout"]).splitlines() == [
            f"http://allowed.test:{hosts.http}/ 200 hello from allowed.test:{hosts.http}",
            f"https://api.wild.test:{hosts.https}/ 200 hello from api.wild.test:{hosts.https}",
            f"http://other.test:{hosts.http}/ ERR HTTP Error 403: Forbidden",
        ]
        log = result["network"]["log"]  # type: ignore[index]
        assert [entry["verdict"] for entry in log] == ["allowed", "allowed", "not-allowed"]

        outside = {"network": "filtered", "networkFilter": {"whitelist": [f"other.test:{hosts.http}"]}}
        beyond = {**asked, "options": outside}
        status, result = _post(server, "/execute", beyond, auth)
        assert status == 403, result
        assert "other.test" in str(result)
    finally:
        _stop(server)


def test_the_library_runs_a_filtered_request_and_returns_its_decisions(engine: str, hosts: Hosts) -> None:
    from isol8 import RunRequest, SandboxPolicy, make_egress, open_backend, run, runtimes

    egress = make_egress(
        [f"allowed.test:{hosts.http}"],
        hosts={"allowed.test": hosts.gateway, "other.test": hosts.gateway},
        allow_private=[hosts.gateway],
    )
    urls = f"http://allowed.test:{hosts.http}/ http://other.test:{hosts.http}/"
    request = RunRequest(
        runtime=runtimes.get("python"),
        code=FETCH.encode(),
        env={"URLS": urls},
        policy=SandboxPolicy(network="filtered", egress=egress),
    )
    result = run(open_backend(engine), request)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith(f"200 hello from allowed.test:{hosts.http}")
    assert result.network_log is not None
    assert [d.verdict for d in result.network_log] == ["allowed", "not-allowed"]
