"""Limits on both engines: values that would mean "unlimited" are refused (exit 2 / HTTP 400, 403 above the
server's ceiling) before any container exists, and the tightest valid values really apply in the container."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from isol8.core.sandbox import OWN_PIDS
from tests.integration.conftest import ISOL8, Isol8
from tests.integration.test_server import KEY, Server, Side, _post, _start, _stop

MIB = 1024 * 1024
UNLIMITED = ["0", "-1", "0.5", "nan", "inf"]
FLAGS = ["--memory", "--sandbox-size", "--tmp-size", "--cpu", "--pids-limit", "--timeout", "--max-output"]
CASES = [(flag, value) for flag in FLAGS for value in UNLIMITED if (flag, value) != ("--cpu", "0.5")]


def _containers_of(engine: str, pid: int) -> list[str]:
    done = subprocess.run(
        [engine, "ps", "-a", "-q", "--filter", f"label=org.isol8.run.pid={pid}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize(("flag", "value"), CASES, ids=lambda v: str(v))
def test_a_limit_flag_meaning_unlimited_exits_2_and_starts_nothing(engine: str, flag: str, value: str) -> None:
    """--debug prints every engine command isol8 runs: there must be none, and no container of this isol8."""
    proc = subprocess.Popen(
        [ISOL8, "--engine", engine, "--debug", "run", "-r", "bash", f"{flag}={value}", "--cmd", "echo ran"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert out == ""
    assert err.startswith(f"isol8: error: {flag}: "), err
    assert f"{engine} " not in err, err  # no engine command line was logged
    assert _containers_of(engine, proc.pid) == []


@pytest.mark.parametrize("tag", ["x//y", "a" * 300, "x\n", "-x", "Upper/name"], ids=repr)
def test_build_with_a_bad_tag_exits_2_and_builds_nothing(isol8: Isol8, engine: str, tag: str) -> None:
    result = isol8("--debug", "build", "--base", "bash", f"--tag={tag}", "--setup", "true")
    assert result.status == 2, result.stderr
    assert "not a valid image name" in result.stderr
    assert f"{engine} " not in result.stderr


def _cgroup(name_v2: str, name_v1: str) -> str:
    return f"cat /sys/fs/cgroup/{name_v2} 2>/dev/null || cat /sys/fs/cgroup/{name_v1}"


def test_the_tightest_valid_limits_apply_in_the_container(isol8: Isol8, no_leftovers: None) -> None:
    script = "; ".join(
        [
            "df -k --output=size /sandbox /tmp | tail -n 2",
            _cgroup("memory.max", "memory/memory.limit_in_bytes"),
            _cgroup("pids.max", "pids/pids.max"),
            _cgroup("cpu.max", "cpu/cpu.cfs_quota_us"),
            "head -c 2000000 /dev/zero > /sandbox/big 2>/dev/null && echo wrote || echo sandbox full",
        ]
    )
    result = isol8(
        "run", "-r", "bash", "--memory=6m", "--cpu=0.01", "--pids-limit=8", "--sandbox-size=1m", "--tmp-size=1m",
        "--cmd", script,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    sandbox_kb, tmp_kb, memory, pids, cpu, full = result.stdout.split("\n")[:6]
    assert (int(sandbox_kb), int(tmp_kb)) == (1024, 1024)
    assert int(memory) == 6 * MIB
    assert int(pids) == 8 + OWN_PIDS  # the program's 8, and isol8's own processes on top
    assert cpu.split()[0] == "1000"  # 0.01 of a 100000us period (v2 "1000 100000", v1 "1000")
    assert full == "sandbox full"


FORK_BURST = """
import os, time
started = 0
for _ in range(20):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    started += 1
print(started)
"""


def test_the_pids_limit_counts_the_programs_processes(isol8: Isol8, no_leftovers: None) -> None:
    """--pids-limit N: the program and N - 1 children, whatever isol8 itself runs in the container."""
    result = isol8("run", "--pids-limit=8", "--timeout=20s", "-e", FORK_BURST)
    assert (result.status, result.stdout) == (0, "7\n"), result.stderr
    result = isol8("run", "--pids-limit=1", "--timeout=20s", "-e", FORK_BURST)
    assert (result.status, result.stdout) == (0, "0\n"), result.stderr


# ---- the server: 400 for a value meaning unlimited, 403 above the config's ---------------------------

BAD = [0, -1, "0", "-1", "0.5", "nan", "inf", True, "", 1.5]
ABOVE = {
    "memoryLimit": "1g",
    "sandboxSize": "1g",
    "tmpSize": "512m",
    "cpuLimit": 2,
    "pidsLimit": 65,
    "timeoutMs": 60_000,
    "maxOutputSize": "2m",
}


@pytest.fixture(scope="module")
def limits_server(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = _start(Side.of_engine(engine), tmp_path_factory.mktemp("serve-limits"), server={"poolSize": 1})
    yield started
    _stop(started)


def _execute(server: Server, options: dict[str, object]) -> tuple[int, dict[str, object]]:
    body = {"request": {"cmd": "echo ran", "runtime": "bash"}, "options": options}
    return _post(server, "/execute", body, {"Authorization": f"Bearer {KEY}"})


def test_server_refuses_limits_meaning_unlimited_with_400(limits_server: Server) -> None:
    for name in ABOVE:
        for value in BAD:
            if (name, value) in (("cpuLimit", "0.5"), ("cpuLimit", 1.5), ("timeoutMs", 1.5)):
                continue  # valid: half a core, 1.5 cores (above the ceiling: 403), 1.5ms
            status, answer = _execute(limits_server, {name: value})
            assert status == 400, (name, value, answer)
            assert str(answer["error"]).startswith(f"{name}: "), answer


def test_server_refuses_limits_above_its_ceiling_with_403_and_accepts_tighter(limits_server: Server) -> None:
    for name, value in ABOVE.items():
        status, answer = _execute(limits_server, {name: value})
        assert status == 403, (name, value, answer)
        assert "exceeds the server's limit" in str(answer["error"])
    status, answer = _execute(limits_server, {"memoryLimit": "6m", "pidsLimit": 8, "sandboxSize": "1m"})
    assert (status, answer["stdout"], answer["exitCode"]) == (200, "ran\n", 0), answer
