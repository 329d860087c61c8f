"""The Python API that the CLI itself uses."""

from __future__ import annotations

import pytest

from isol8 import Backend, RunRequest, SandboxPolicy, open_backend, result_json, runtimes
from isol8.core.runner import Chunk, Execution, run
from tests.integration.conftest import assert_no_containers


@pytest.fixture
def engine_api(engine: str) -> Backend:
    return open_backend(engine)


def test_run_returns_a_typed_result(engine_api: Backend, engine: str) -> None:
    request = RunRequest(
        runtime=runtimes.get("node"),
        code=b"console.log(process.env.WHO); console.error(require('fs').readFileSync(0, 'utf8'))",
        env={"WHO": "library"},
        stdin=[b"from stdin"],
        policy=SandboxPolicy(memory="128m"),
    )
    result = run(engine_api, request)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "library\n", "from stdin\n")
    assert result_json(result)["runtime"] == "node"
    assert_no_containers(engine)


def test_execution_streams_chunks_then_sets_the_result(engine_api: Backend) -> None:
    code = b"import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.2)\n"
    execution = Execution(engine_api, RunRequest(runtime=runtimes.get("python"), code=code))
    chunks: list[Chunk] = list(execution)
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"0\n1\n2\n"
    assert len(chunks) >= 2  # live, not one buffered blob
    assert execution.result is not None and execution.result.exit_code == 0


KEEP_AFTER_A_REMOVED_RUN = """
import sys
from isol8 import RunRequest, open_backend, runtimes
from isol8.core.runner import run

backend = open_backend(sys.argv[1])
python = runtimes.get("python")
assert run(backend, RunRequest(runtime=python, code=b"print(1)")).exit_code == 0
kept = run(backend, RunRequest(runtime=python, code=b"print(2)", persist=True))
print(kept.container)
"""


def test_a_kept_container_outlives_a_clean_exit_after_other_runs(engine: str) -> None:
    """The reaper sweeps every container of a process that exits with one still unaccounted for:
    a run that the engine's --rm removed must be accounted for, or the kept one goes too."""
    import subprocess
    import sys
    import time

    done = subprocess.run(
        [sys.executable, "-c", KEEP_AFTER_A_REMOVED_RUN, engine], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    try:
        time.sleep(4)  # the watcher's sweep, had it started, removes in two passes 2 s apart
        inspect = subprocess.run([engine, "container", "inspect", name], capture_output=True, text=True)
        assert inspect.returncode == 0, f"{name} was removed: {inspect.stderr}"
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True)
