"""The Kubernetes backend, for real: `isol8 --backend kubernetes` runs Pods through kubectl.

"simulated": kubectl is tests/kubesim/kubectl, a node made of podman (`podman kube play` of isol8's
own manifests; see its docstring for what it adds and leaves out). "live": the cluster that
ISOL8_TEST_KUBECONFIG names, with the real kubectl; skipped, visibly, when it is not set: the
only skip CI allows. Both run the same tests: hello in each runtime, exit codes, the sandbox's
attack tests, limits, timeouts, signals, no network under `none`, and no Pod left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ISOL8
from tests.integration.kube import NAMESPACE, Cluster, node_gateway, open_cluster
from tests.integration.ports import free_port
from tests.integration.remote import REGISTRY, registry
from tests.integration.test_network_filter import FETCH, NAMES, Hosts


@pytest.fixture(scope="module", params=["simulated", "live"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return open_cluster(request.param, tmp_path_factory)


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    cluster.assert_empty()


@pytest.mark.parametrize(
    ("runtime", "code", "expected"),
    [
        ("python", "import sys; print('py', sys.version_info[0])", "py 3\n"),
        ("node", "console.log('node', typeof process)", "node object\n"),
        ("bun", "console.log('bun', typeof Bun)", "bun object\n"),
        ("deno", "console.log('deno', typeof Deno)", "deno object\n"),
        ("bash", "echo bash $((6 * 7))", "bash 42\n"),
    ],
)
def test_hello_in_each_runtime(kube: Cluster, runtime: str, code: str, expected: str) -> None:
    done = kube.isol8("run", "--runtime", runtime, "-e", code)
    assert (done.status, done.stdout) == (0, expected), done.stderr


def test_exit_code_stdin_and_stderr_are_the_programs(kube: Cluster) -> None:
    done = kube.isol8("run", "--cmd", "read -r line; echo got $line; echo oops >&2; exit 3", stdin="piped\n")
    assert (done.status, done.stdout, done.stderr) == (3, "got piped\n", "oops\n")  # no kubectl report in it


def test_json_result_names_the_pod(kube: Cluster) -> None:
    done = kube.isol8("run", "--json", "-e", "print(2)")
    result = json.loads(done.stdout)
    assert (result["stdout"], result["exitCode"], result["timedOut"]) == ("2\n", 0, False)
    assert result["runtime"] == "python"


ATTACKS = [
    ("id -u; id -g", "1100\n1100\n"),
    ("touch /x 2>/dev/null || echo read-only", "read-only\n"),
    ("grep CapEff /proc/self/status | tr -d '\\t'", "CapEff:0000000000000000\n"),
    ("grep NoNewPrivs /proc/self/status | tr -d '\\t'", "NoNewPrivs:1\n"),
    ("unshare -r true 2>/dev/null || echo no-unshare", "no-unshare\n"),
    ("mkdir -p m; mount -t tmpfs x m 2>/dev/null || echo no-mount", "no-mount\n"),
    ("[ -e /var/run/secrets/kubernetes.io ] && echo token || echo no-token", "no-token\n"),
    ("env | grep -c _SERVICE_HOST || true", "0\n"),
    ("df -P /sandbox /tmp | awk 'NR>1 {print $1}'", "tmpfs\ntmpfs\n"),
]


@pytest.mark.parametrize(("cmd", "expected"), ATTACKS, ids=[a[1].strip().split("\n")[0] for a in ATTACKS])
def test_the_sandbox_holds(kube: Cluster, cmd: str, expected: str) -> None:
    done = kube.isol8("run", "--cmd", cmd)
    assert (done.status, done.stdout) == (0, expected), done.stderr


def test_no_network_under_none(kube: Cluster) -> None:
    probe = (
        "import socket\ntry:\n socket.create_connection(('1.1.1.1', 53), 3); print('reached')\n"
        "except OSError as e: print('no', e.errno)"
    )
    done = kube.isol8("run", "-e", probe)
    assert done.status == 0 and done.stdout.startswith("no "), done.stdout + done.stderr
    names = "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))"
    assert kube.isol8("run", "-e", names).stdout == "['lo']\n"


def test_a_fork_bomb_is_contained_and_the_run_ends(kube: Cluster) -> None:
    bomb = "bomb() { bomb | bomb & }; bomb 2>/dev/null; sleep 30"
    done = kube.isol8("run", "--timeout", "8s", "--cmd", bomb)
    assert done.status != 0 and done.seconds < 60, done.stderr[-500:]
    assert kube.isol8("run", "--cmd", "echo fine").stdout == "fine\n"  # the node is still usable


def test_memory_limit_is_reported_as_oom(kube: Cluster) -> None:
    done = kube.isol8("run", "--memory", "64m", "-e", "x = bytearray(300 * 1024 * 1024); print('survived')")
    assert done.status == 137 and "survived" not in done.stdout
    assert "out of memory" in done.stderr and "command terminated" not in done.stderr


def test_timeout_kills_promptly_and_deletes_the_pod(kube: Cluster) -> None:
    done = kube.isol8("run", "--timeout", "2s", "--cmd", "echo started; sleep 60")
    assert (done.status, done.stdout) == (124, "started\n")
    assert done.seconds < 20


def _wait_for_pod(kube: Cluster, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not kube.pods():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_deletes_the_pod(kube: Cluster, sig: signal.Signals) -> None:
    proc = kube.start("--cmd", "sleep 120")
    _wait_for_pod(kube, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig


def test_a_killed_isol8_leaves_its_pod_to_the_reaper(kube: Cluster) -> None:
    proc = kube.start("--cmd", "sleep 120")
    _wait_for_pod(kube, proc)
    proc.kill()
    proc.wait(timeout=30)
    kube.assert_empty(within=30)


def test_an_image_the_cluster_cannot_pull_is_a_clear_error(kube: Cluster) -> None:
    done = kube.isol8("run", "--image", "isol8-test/no-such-image:1", "-e", "print(1)")
    assert done.status == 125
    assert "image isol8-test/no-such-image:1 cannot be pulled by the cluster" in done.stderr


def test_cleanup_deletes_kept_pods(kube: Cluster) -> None:
    done = kube.isol8("run", "--persist", "--cmd", "echo kept")
    assert done.stdout == "kept\n" and len(kube.pods()) == 1
    cleaned = kube.isol8("cleanup", "--force")
    assert cleaned.status == 0, cleaned.stderr


def test_dry_run_creates_nothing(kube: Cluster) -> None:
    done = kube.isol8("run", "--dry-run", "-e", "print(1)")
    assert done.status == 0 and "kubectl --namespace=isol8-test create -f - -o name <<'ISOL8'" in done.stdout
    assert kube.pods() == []


def test_the_server_runs_its_executions_as_pods(kube: Cluster, tmp_path: Path) -> None:
    """`isol8 serve --backend kubernetes`: warm pools of standby Pods, executions and streams through
    them, concurrency, sessions as Pods (their record in its annotations), and every Pod deleted
    when it stops."""
    from concurrent.futures import ThreadPoolExecutor

    from isol8.frontends.remote import Isol8Remote, RemoteError

    port = free_port()
    key = os.urandom(8).hex()
    log = tmp_path / "serve.log"
    argv = [ISOL8, "--backend", "kubernetes", "--config", str(kube.config), "--no-user-config", "serve"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--key", key], env=kube.env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    client = Isol8Remote(f"http://127.0.0.1:{port}", key)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client.health()
                break
            except RemoteError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert "nothing is built here" in log.read_text()
        assert kube.pods()  # the warm pools
        result = client.execute({"request": {"code": "import sys; print('py'); sys.exit(3)", "runtime": "python"}})
        assert (result["stdout"], result["exitCode"]) == ("py\n", 3)
        events = list(client.stream({"request": {"cmd": "echo out; echo err >&2", "runtime": "bash"}}))
        said = [(e["type"], e["data"]) for e in events]  # two pipes: their order is the reads'
        assert sorted(said[:-1]) == [("stderr", "err\n"), ("stdout", "out\n")] and said[-1] == ("exit", "0")
        body = {"request": {"code": "console.log(process.pid > 0)", "runtime": "node"}}
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: client.execute(body), range(6)))
        assert [r["stdout"] for r in results] == ["true\n"] * 6
        _a_session_keeps_files_and_loses_its_processes(kube, client, f"http://127.0.0.1:{port}", key)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()


SPY = "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 77' || true"


def _a_session_keeps_files_and_loses_its_processes(kube: Cluster, client: Any, url: str, key: str) -> None:
    sid = f"s-{os.getpid()}"
    start = "echo kept > note.txt; sleep 77 & echo ok"
    first = client.execute({"sessionId": sid, "request": {"cmd": start, "runtime": "bash"}})
    second = client.execute({"sessionId": sid, "request": {"cmd": f"cat note.txt; {SPY}", "runtime": "bash"}})
    assert (first["stdout"], second["stdout"]) == ("ok\n", "kept\n0\n")  # the turn's end swept its sleep
    (pod,) = [name for name in kube.pods() if name.startswith("isol8-session-")]
    argv = ["kubectl", "--namespace", NAMESPACE, "get", f"pod/{pod}", "-o", "json"]
    notes = json.loads(subprocess.run(argv, capture_output=True, text=True, env=kube.env).stdout)["metadata"]
    assert "org.isol8.session.used" in notes["annotations"] and "org.isol8.session.turn" not in notes["annotations"]
    ended = urllib.request.Request(f"{url}/session/{sid}", method="DELETE", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(ended) as response:
        assert response.status == 200
    assert not [name for name in kube.pods() if name.startswith("isol8-session-")]


def test_images_come_from_the_registry_and_what_they_lack_is_installed_at_run_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`setup --push` and `build --push` from an engine; then a cluster's run pulls the base image,
    finds a custom image by its labels in the registry (pinned by digest), and installs at run
    time, in an installer Pod, what no image there has."""
    if cluster.kind != "simulated":
        pytest.skip("a registry on this machine is out of a live cluster's nodes' reach")
    if shutil.which("skopeo") is None or not os.path.exists(REGISTRY):
        pytest.fail("the registry test needs docker-registry and skopeo (Debian packages)")
    with registry(tmp_path / "registry") as where:
        repository = f"{where}/isol8-kube-{os.getpid()}"
        shared = {"registry": {"repository": repository, "tlsVerify": False}}
        engine_config = tmp_path / "engine.json"
        engine_config.write_text(json.dumps(shared))
        config = tmp_path / "kube.json"
        config.write_text(json.dumps({**json.loads(cluster.config.read_text()), **shared}))
        kube = Cluster(cluster.kind, {**cluster.env, "ISOL8_KUBESIM_TLS_VERIFY": "false"}, config)

        def engine(*args: str) -> subprocess.CompletedProcess[str]:
            argv = [ISOL8, "--engine", "podman", "--config", str(engine_config), *args]
            return subprocess.run(argv, capture_output=True, text=True, timeout=900)

        setup = engine("setup", "-r", "python", "--push")
        assert setup.returncode == 0 and f"pushed: {repository}/isol8:python" in setup.stdout, setup.stderr
        tag = f"isol8-test-kube-{os.getpid()}:1"
        built = engine("build", "--base", "python", "--tag", tag, "--install", "iniconfig", "--push")
        assert built.returncode == 0, built.stderr
        # the node has neither: it pulls them
        images = subprocess.run(
            ["podman", "images", "-q", "--filter", "label=org.isol8.dependencies=iniconfig"],
            capture_output=True,
            text=True,
        ).stdout.split()
        subprocess.run(["podman", "rmi", "-f", *images], capture_output=True)
        subprocess.run(["podman", "rmi", f"{repository}/isol8:python"], capture_output=True)
        try:
            base = kube.isol8("run", "-e", "print('base')")
            assert (base.status, base.stdout) == (0, "base\n"), base.stderr
            program = "import iniconfig; print(iniconfig.__name__)"
            found = kube.isol8("run", "--json", "--install", "iniconfig", "-e", program)
            result = json.loads(found.stdout)
            assert (found.status, result["stdout"]) == (0, "iniconfig\n"), found.stderr
            assert result["image"].startswith(f"{repository}/python@sha256:")  # pinned by the digest ranked
            program = "import iniconfig, six; print(six.__name__)"
            lacking = kube.isol8("run", "--json", "--install", "iniconfig", "--install", "six", "-e", program)
            assert lacking.stdout, lacking.stderr
            result = json.loads(lacking.stdout)  # six, in no image, installed at run time on that one
            assert (lacking.status, result["stdout"]) == (0, "six\n"), lacking.stderr
            assert result["image"].startswith(f"{repository}/python@sha256:")
        finally:  # by name: the base image's other names (isol8:python) stay
            subprocess.run(["podman", "rmi", f"{repository}/isol8:python"], capture_output=True)
            labelled = ["podman", "images", "-q", "--filter", "label=org.isol8.dependencies=iniconfig"]
            custom = subprocess.run(labelled, capture_output=True, text=True).stdout.split()
            subprocess.run(["podman", "rmi", "-f", *custom], capture_output=True)
        kube.assert_empty()


def test_doctor_checks_the_clusters_sandbox_and_catches_a_profile_that_allows_user_namespaces(
    kube: Cluster, tmp_path: Path
) -> None:
    done = kube.isol8("doctor")
    assert done.status == 0 and "sandbox: starts; the nodes' " in done.stdout, done.stdout + done.stderr
    if kube.kind != "simulated":
        return
    weak = tmp_path / "runtime-default.json"  # podman's own default profile lets a program unshare
    weak.write_text(json.dumps({"backend": {"kind": "kubernetes", "namespace": NAMESPACE}}))
    done = Cluster(kube.kind, kube.env, weak).isol8("doctor")
    assert done.status != 0 and "sandbox: with RuntimeDefault" in done.stdout, done.stdout


# ---- --net filtered: a proxy Pod, and NetworkPolicies that leave it the only way out ------------


@pytest.fixture
def filtered(kube: Cluster, tmp_path: Path, stand_ins: tuple[int, int]) -> tuple[Cluster, Hosts]:
    """kube with network.hosts naming this machine's stand-in servers (tests/integration/test_network_filter.py),
    which the simulated node's Pods reach through their network's gateway."""
    if kube.kind != "simulated":
        pytest.skip("the stand-in servers on this machine are out of a live cluster's reach")
    hosts = Hosts(node_gateway(), *stand_ins)
    network = {"hosts": dict.fromkeys(NAMES, hosts.gateway), "allowPrivate": [f"{hosts.gateway}/32"]}
    config = tmp_path / "filtered.json"
    config.write_text(json.dumps({**json.loads(kube.config.read_text()), "network": network}))
    return Cluster(kube.kind, kube.env, config), hosts


def test_a_filtered_run_reaches_its_allowed_hosts_through_its_proxy_pod_and_the_log_says_so(
    filtered: tuple[Cluster, Hosts],
) -> None:
    kube, hosts = filtered
    p, s = hosts.http, hosts.https
    urls = [f"http://allowed.test:{p}/", f"https://allowed.test:{s}/", f"http://other.test:{p}/"]
    allow = ["--allow", f"allowed.test:{p}", "--allow", f"allowed.test:{s}", "--deny", "denied.test"]
    done = kube.isol8("run", "--json", *allow, "--env", f"URLS={' '.join(urls)}", "-e", FETCH)
    assert done.status == 0, done.stderr
    result = json.loads(done.stdout)
    got = dict(line.split(" ", 1) for line in result["stdout"].splitlines())
    assert got == {
        urls[0]: f"200 hello from allowed.test:{p}",
        urls[1]: f"200 hello from allowed.test:{s}",  # through a CONNECT tunnel
        urls[2]: "ERR HTTP Error 403: Forbidden",
    }, result
    verdicts = [(entry["target"], entry["verdict"]) for entry in result["network"]["log"]]
    assert verdicts == [(urls[0], "allowed"), (f"allowed.test:{s}", "allowed"), (urls[2], "not-allowed")]


# beside the engines' ways out (test_network_filter.BYPASS): the proxy Pod's address itself, on
# another port, and an ICMP socket
AROUND_THE_RELAY = r"""
import socket, urllib.request
proxy = open("/proc/net/tcp").read()  # the relay's connections: to the proxy Pod's port 3128
peers = {line.split()[2] for line in proxy.splitlines()[1:] if line.split()[2].endswith(":0C38")}
for peer in peers:
    raw, _ = peer.split(":")
    address = ".".join(str(int(raw[i - 2 : i], 16)) for i in range(8, 0, -2))
    try:
        socket.create_connection((address, 22), 3)
        print("proxy pod port 22: REACHED")
    except OSError as exc:
        print("proxy pod port 22: failed", type(exc).__name__)
print("peers", len(peers))
try:  # a ping socket: the Pod's ping_group_range gives it to no group
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    print("icmp socket: REACHED")
except OSError as exc:
    print("icmp socket: failed", type(exc).__name__)
"""


def test_nothing_but_the_proxy_pod_leads_out_of_a_filtered_pod(filtered: tuple[Cluster, Hosts]) -> None:
    from tests.integration.test_network_filter import BYPASS

    kube, hosts = filtered
    allowed = f"allowed.test:{hosts.http}"
    target = f"TARGET={hosts.gateway}:{hosts.http}"
    # a connection to the proxy kept open while the probe reads /proc/net/tcp for its address
    keep = "import socket\nheld = socket.create_connection(('127.0.0.1', 3128), 5)\nimport time; time.sleep(0.5)\n"
    done = kube.isol8("run", "--allow", allowed, "--env", target, "-e", BYPASS + keep + AROUND_THE_RELAY)
    assert done.status == 0, done.stderr
    results = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    asked = {name: results.pop(name, None) for name in ("manager", "ftp", "other port")}
    assert asked == {"manager": "status 403", "ftp": "status 403", "other port": "status 403"}, done.stdout
    assert "peers 0" not in done.stdout, done.stdout  # the probe found the proxy Pod
    assert len(results) == 10 and all(outcome.startswith("failed") for outcome in results.values()), done.stdout
    assert results["raw socket"] == "failed PermissionError"
    assert results["proxy to an ip"] == "failed HTTPError"  # the proxy's own refusal: the IP is no allowed name


def test_a_timed_out_or_killed_filtered_run_leaves_no_pod_or_policy(filtered: tuple[Cluster, Hosts]) -> None:
    kube, hosts = filtered
    done = kube.isol8("run", "--allow", f"allowed.test:{hosts.http}", "--timeout", "2s", "--cmd", "echo up; sleep 60")
    assert (done.status, done.stdout) == (124, "up\n"), done.stderr
    kube.assert_empty()
    proc = kube.start("--allow", f"allowed.test:{hosts.http}", "--cmd", "sleep 120")
    deadline = time.monotonic() + 60
    while len(kube.pods()) < 2:  # the proxy Pod and the sandbox's
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1)
    proc.kill()
    proc.wait(timeout=30)
    kube.assert_empty(within=30)  # the reaper deleted both Pods; the policies went with the proxy's


# waits until its proxy is gone (the relay's connections then end at once), then tries the way out
AFTER_THE_PROXY = r"""
import os, socket, time
gateway, port = os.environ["TARGET"].split(":")
print("ready", flush=True)
deadline = time.time() + 60
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", 3128), 2) as s:
            s.sendall(b"GET http://gone.test/ HTTP/1.0\r\n\r\n")
            if not s.recv(10):
                break
    except OSError:
        break
    time.sleep(0.2)
print("proxy gone", flush=True)
time.sleep(1)
for _ in range(5):
    try:
        socket.create_connection((gateway, int(port)), 2).close()
        print("REACHED", flush=True)
    except OSError as exc:
        print("failed", type(exc).__name__, flush=True)
    time.sleep(0.3)
"""


def test_a_filtered_sandbox_whose_proxy_pod_is_deleted_is_left_with_no_way_out(
    filtered: tuple[Cluster, Hosts],
) -> None:
    """The run's policies go with its proxy Pod (an eviction, `POST /cleanup`, a hand's delete): the
    namespace's standing policy of `filtered` still denies the sandbox everything."""
    kube, hosts = filtered
    target = f"TARGET={hosts.gateway}:{hosts.http}"
    proc = kube.start("--allow", f"allowed.test:{hosts.http}", "--env", target, "-e", AFTER_THE_PROXY)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.communicate()
    (proxy,) = [name for name in kube.pods() if name.endswith("-proxy")]
    argv = ["kubectl", "--namespace", NAMESPACE, "delete", "pod", proxy, "--grace-period=0", "--force"]
    subprocess.run(argv, env=kube.env, capture_output=True, check=True)
    out, err = proc.communicate(timeout=120)
    lines = out.splitlines()
    assert lines[0] == "proxy gone" and len(lines) == 6, out + err
    assert all(line.startswith("failed") for line in lines[1:]), out
    kube.assert_empty()


def test_the_program_cannot_see_its_relay_to_signal_it(filtered: tuple[Cluster, Hosts]) -> None:
    """The relay is the sandbox Pod's other container: another PID namespace (and uid 13), so no
    pid of it is the program's to name (`kill -1` included), while the proxy it leads to answers."""
    kube, hosts = filtered
    code = (
        "import os, urllib.request\n"
        "cmdlines = [open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]\n"
        "print('relays seen', sum(b'socat' in c for c in cmdlines), 'processes', len(cmdlines) > 1)\n"
        f"print(urllib.request.urlopen('http://allowed.test:{hosts.http}/', timeout=10).status)\n"
    )
    done = kube.isol8("run", "--allow", f"allowed.test:{hosts.http}", "-e", code)
    assert (done.status, done.stdout) == (0, "relays seen 0 processes True\n200\n"), done.stdout + done.stderr
