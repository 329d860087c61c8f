"""What a run used, from its cgroup: CPU time, peak memory and (cgroup v2) peak pids, on both engines.

The server's results carry the same: tests/integration/test_server.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.conftest import Isol8

MIB = 2**20
BURN_ONE_SECOND = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1:\n    pass\n"
CGROUP_V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()  # the host's: its containers have the same


def usage_of(isol8: Isol8, *args: str) -> dict[str, Any]:
    done = isol8("run", "--json", *args)
    assert done.status == 0, done.stderr
    usage: dict[str, Any] = json.loads(done.stdout)["usage"]
    return usage


def test_a_memory_hungry_run_reports_its_peak_memory(isol8: Isol8) -> None:
    allocated = 300 * MIB
    usage = usage_of(isol8, "--memory", "512m", "-e", f"data = b'x' * {allocated}\nprint(len(data))")
    assert 0.9 * allocated <= usage["memoryPeakBytes"] <= 1.1 * allocated, usage
    small = usage_of(isol8, "-e", "print(1)")
    assert small["memoryPeakBytes"] < 0.1 * allocated, small


def test_a_cpu_bound_second_reports_about_a_second_of_cpu_and_a_sleep_almost_none(isol8: Isol8) -> None:
    busy = usage_of(isol8, "-e", BURN_ONE_SECOND)
    assert 800 <= busy["cpuTimeMs"] <= 1300, busy
    idle = usage_of(isol8, "--cmd", "sleep 1")
    assert idle["cpuTimeMs"] < 200, idle


def test_peak_pids_are_reported_where_the_kernel_counts_them(isol8: Isol8) -> None:
    usage = usage_of(isol8, "--cmd", "for i in 1 2 3 4 5; do sleep 1 & done; wait")
    if CGROUP_V2:
        assert usage["pidsPeak"] >= 6, usage
    else:  # cgroup v1 keeps no peak: left out, never made up
        assert "pidsPeak" not in usage, usage


def test_a_timed_out_run_reports_no_usage_rather_than_a_guess(isol8: Isol8) -> None:
    done = isol8("run", "--json", "--timeout", "1s", "-e", "while True: pass")
    assert done.status == 124
    assert "usage" not in json.loads(done.stdout)
