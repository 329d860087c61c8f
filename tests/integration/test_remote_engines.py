"""The run suite's core through engines reached as if from elsewhere (tests/integration/remote.py):
docker over ssh (DOCKER_HOST-style --docker-host, and a docker context), podman through its API
socket (--url) and over ssh (the config's backend.url and backend.identity). Each endpoint must
really be the one used: a run through one that does not answer fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ISOL8, Result, _answers, assert_no_containers, run_isol8, watcher_of
from tests.integration.remote import Endpoint, podman_service, sshd

NAMES = ("docker-ssh", "docker-context", "podman-socket", "podman-ssh")
# the program reports what its sandbox is: uid, seccomp mode, isol8's own profile (it refuses
# inotify_init1, which the engines' default profiles allow), and its network interfaces
PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
refused = libc.inotify_init1(0) == -1 and ctypes.get_errno() == 1
seccomp = open('/proc/self/status').read().split('Seccomp:')[1].split()[0]
print(os.getuid(), seccomp, refused, sorted(os.listdir('/sys/class/net')))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Endpoint]]:
    for engine in ("docker", "podman"):
        problem = _answers(engine)
        if problem is not None:
            message = f"{engine} is not usable: {problem}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    root = tmp_path_factory.mktemp("remote")
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").touch()  # podman's own ssh client records the host key there
    with sshd(root / "sshd") as server, podman_service(root / "podman.sock") as sock:
        path = f"{server.bin}:{os.environ['PATH']}"
        docker_env = {"PATH": path, "DOCKER_CONFIG": str(root / "docker-config")}
        made = subprocess.run(
            ["docker", "context", "create", "isol8-remote", "--docker", "host=ssh://127.0.0.1"],
            env={**os.environ, **docker_env},
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        config = root / "podman-ssh.json"
        url = f"ssh://root@127.0.0.1:{server.port}{sock}"
        config.write_text(json.dumps({"backend": {"url": url, "identity": str(server.key)}}))
        yield {
            "docker-ssh": Endpoint("docker-ssh", "docker", ("--docker-host", "ssh://127.0.0.1"), docker_env),
            "docker-context": Endpoint("docker-context", "docker", ("--context", "isol8-remote"), docker_env),
            "podman-socket": Endpoint("podman-socket", "podman", ("--url", f"unix://{sock}"), {}),
            "podman-ssh": Endpoint("podman-ssh", "podman", ("--config", str(config)), {"HOME": str(home)}),
        }


@pytest.fixture(params=NAMES)
def endpoint(world: dict[str, Endpoint], request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    chosen = world[request.param]
    yield chosen
    assert_no_containers(chosen.engine)


def through(endpoint: Endpoint, *args: str, **kwargs: object) -> Result:
    return run_isol8(endpoint.engine, *endpoint.args, *args, env=endpoint.env, **kwargs)  # type: ignore[arg-type]


def test_a_run_goes_through_the_endpoint_with_every_defence(endpoint: Endpoint) -> None:
    done = through(endpoint, "run", "-e", PROBE)
    assert (done.status, done.stdout) == (0, "1100 2 True ['lo']\n"), done.stderr
    shown = json.loads(through(endpoint, "config", "--json").stdout)
    assert shown["endpoint"] == {"engine": endpoint.engine, "where": _where(endpoint)}


def _where(endpoint: Endpoint) -> str:
    """The client's own options, as isol8 passes them."""
    if endpoint.name == "podman-ssh":
        backend = json.loads(Path(endpoint.args[1]).read_text())["backend"]
        return f"--url={backend['url']} --identity={backend['identity']}"
    option, value = endpoint.args
    return f"{option.replace('--docker-host', '--host')}={value}"


def test_an_endpoint_that_does_not_answer_is_the_engine_unavailable(endpoint: Endpoint, tmp_path: Path) -> None:
    """The options are really what the client uses: pointed at nothing, nothing runs."""
    nowhere = {"docker": ("--docker-host", "ssh://127.0.0.1:1"), "podman": ("--url", f"unix://{tmp_path}/none.sock")}
    done = run_isol8(endpoint.engine, *nowhere[endpoint.engine], "run", "-e", "print(1)", env=endpoint.env)
    assert done.status == 125 and done.stdout == "", done.stderr
    assert "not reachable" in done.stderr, done.stderr


def test_limits_hold_through_the_endpoint(endpoint: Endpoint) -> None:
    code = " ".join(
        f"cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1};"
        for v2, v1 in (
            ("memory.max", "memory/memory.limit_in_bytes"),
            ("pids.max", "pids/pids.max"),
            ("cpu.max", "cpu/cpu.cfs_quota_us"),
        )
    )
    done = through(endpoint, "run", "-r", "bash", "--memory", "64m", "--pids-limit", "16", "--cpu", "0.5", "-e", code)
    assert done.status == 0, done.stderr
    memory, pids, cpu = done.stdout.split(maxsplit=2)
    assert (memory, cpu.split()[0]) == (str(64 << 20), "50000")
    assert int(pids) >= 16
    oom = through(endpoint, "run", "--memory", "64m", "-e", "b = bytearray(512 << 20)")
    assert oom.status == 137 and "out of memory" in oom.stderr, oom.stderr
    late = through(endpoint, "run", "--timeout", "2s", "-e", "print('started', flush=True)\nwhile True: pass")
    assert (late.status, late.stdout) == (124, "started\n"), late.stderr
    assert "timed out after 2s" in late.stderr


def test_sigint_removes_the_container_through_the_endpoint(endpoint: Endpoint) -> None:
    proc = _start(endpoint, "-e", "import time; print('ready', flush=True); time.sleep(60)")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
        proc.wait()


def test_cleanup_through_the_endpoint_removes_what_a_killed_isol8_left(endpoint: Endpoint) -> None:
    proc = _start(endpoint, "--timeout", "2m", "-e", "import time; print('ready', flush=True); time.sleep(120)")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    watcher = watcher_of(proc.pid)
    assert watcher is not None
    os.kill(watcher, signal.SIGKILL)  # else it removes the container as soon as isol8 dies
    proc.kill()
    proc.wait()
    done = through(endpoint, "cleanup", "--force")
    assert done.status == 0 and "removed 1 container(s)" in done.stdout, done.stdout + done.stderr


def test_build_images_and_discovery_through_the_endpoint(endpoint: Endpoint) -> None:
    tag = f"isol8-remote-{endpoint.name}-{os.getpid()}:v1"
    built = through(endpoint, "build", "--base", "python", "--tag", tag, "--install", "six")
    try:
        assert built.status == 0, built.stderr
        listed = through(endpoint, "images", "--json")
        assert tag.split(":")[0] in listed.stdout, listed.stdout
        run = through(endpoint, "--debug", "run", "--install", "six", "-e", "import six; print(six.__name__)")
        assert (run.status, run.stdout) == (0, "six\n"), run.stderr
        assert "resolve: exact" in run.stderr and "to install: nothing" in run.stderr
    finally:
        ref = tag if endpoint.engine == "docker" else f"localhost/{tag}"
        subprocess.run([endpoint.engine, "rmi", "-f", ref], capture_output=True)


def _start(endpoint: Endpoint, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ISOL8, "--engine", endpoint.engine, *endpoint.args, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **endpoint.env},
    )


def test_setup_through_a_remote_podman_labels_images_with_isol8s_profile(world: dict[str, Endpoint]) -> None:
    """A remote podman opens a seccomp file on its own host, so isol8 gives it the profile as a
    label of its images; an image without one is refused, never run with a weaker profile."""
    podman = world["podman-socket"]
    done = through(podman, "setup")
    assert done.status == 0, done.stderr
    alpine = through(podman, "run", "--image", "isol8-bootstrap/debian:bookworm", "-r", "bash", "-e", "echo 1")
    assert alpine.status == 125 and "carries no seccomp profile" in alpine.stderr, alpine.stderr
    started = time.monotonic()
    assert through(podman, "run", "-e", PROBE).stdout == "1100 2 True ['lo']\n"
    assert time.monotonic() - started < 30
