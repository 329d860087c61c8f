"""isol8 run against real engines: runtimes, options, results, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Isol8

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("hello.py", "import sys; print('python', sys.version_info[0])", "python 3"),
        ("hello.mjs", "import os from 'node:os'; console.log('esm', typeof os.cpus)", "esm function"),
        ("hello.cjs", "const os = require('os'); console.log('cjs', typeof module.exports)", "cjs object"),
        ("hello.js", "console.log('node', 1 + 1)", "node 2"),
        ("hello.ts", "const n: number = 2; console.log('bun', n * 21)", "bun 42"),
        ("hello.mts", "const n: number = 6; console.log('deno', n * 7)", "deno 42"),
        ("hello.sh", "echo bash $((6 * 7))", "bash 42"),
    ],
)
def test_runtime_detected_from_extension(isol8: Isol8, tmp_path: Path, name: str, source: str, expected: str) -> None:
    script = tmp_path / name
    script.write_text(source + "\n")
    done = isol8("run", str(script))
    assert (done.status, done.stdout.strip()) == (0, expected), done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("runtime", ["python", "node", "bun", "deno", "bash"])
def test_cmd_runs_bash_in_every_runtime_image(isol8: Isol8, runtime: str) -> None:
    done = isol8("run", "-r", runtime, "--cmd", "echo one | tr a-z A-Z; exit 7")
    assert (done.status, done.stdout) == (7, "ONE\n")


def test_code_from_stdin_with_runtime_flag(isol8: Isol8) -> None:
    done = isol8("run", "-r", "node", stdin="console.log([1,2,3].map(x => x * 2).join(','))")
    assert (done.status, done.stdout) == (0, "2,4,6\n")


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_code_passes_through(isol8: Isol8, code: int) -> None:
    done = isol8("run", "-e", f"import sys; print('x'); sys.exit({code})")
    assert (done.status, done.stdout) == (code, "x\n")


def test_stdout_and_stderr_are_separate_and_live(isol8: Isol8) -> None:
    done = isol8("run", "-e", "import sys; print('out'); print('err', file=sys.stderr); raise SystemExit(1)")
    assert (done.status, done.stdout, done.stderr) == (1, "out\n", "err\n")


def test_syntax_error_is_the_programs_failure_not_isol8s(isol8: Isol8) -> None:
    done = isol8("run", "-e", "def (")
    assert done.status == 1
    assert "SyntaxError" in done.stderr
    assert "isol8: error" not in done.stderr


def test_json_result(isol8: Isol8, engine: str) -> None:
    done = isol8("run", "--json", "-e", "import sys; print('hi'); print('oops', file=sys.stderr); sys.exit(3)")
    result = json.loads(done.stdout)
    assert done.status == 3
    assert {
        k: result[k] for k in ("stdout", "stderr", "exitCode", "timedOut", "oomKilled", "truncated", "runtime")
    } == {
        "stdout": "hi\n",
        "stderr": "oops\n",
        "exitCode": 3,
        "timedOut": False,
        "oomKilled": False,
        "truncated": False,
        "runtime": "python",
    }
    assert result["image"].endswith("isol8:python")
    assert result["durationMs"] > 0


def test_no_stream_and_out_file(isol8: Isol8, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    done = isol8("run", "--no-stream", "--out", str(out), "-e", "print('line1'); print('line2')")
    assert done.stdout == "line1\nline2\n"
    assert out.read_text() == "line1\nline2\n"


def test_env_stdin_and_piped_stdin(isol8: Isol8) -> None:
    code = "import os, sys; print(os.environ['GREETING'], os.environ['EMPTY'] == '', sys.stdin.read())"
    done = isol8("run", "--env", "GREETING=hello world", "--env", "EMPTY=", "--stdin", "from flag", "-e", code)
    assert done.stdout == "hello world True from flag\n", done.stderr
    piped = isol8("run", "-e", "import sys; print(sys.stdin.read().upper())", stdin="piped data")
    assert piped.stdout == "PIPED DATA\n"


def test_secret_is_masked_even_when_printed_one_character_at_a_time(isol8: Isol8) -> None:
    code = (
        "import os, sys, time\n"
        "s = os.environ['API_TOKEN']\n"
        "for c in s:\n"
        "    sys.stdout.write(c); sys.stdout.flush(); time.sleep(0.02)\n"
        "print()\n"
        "print('err', s, file=sys.stderr)\n"
    )
    done = isol8("run", "--secret", "API_TOKEN=tok-3f9a7c", "-e", code)
    assert done.status == 0
    assert "tok-3f9a7c" not in done.stdout + done.stderr
    assert done.stdout == "***\n"
    assert done.stderr == "err ***\n"
    as_json = isol8("run", "--json", "--secret", "API_TOKEN=tok-3f9a7c", "-e", code)
    assert "tok-3f9a7c" not in as_json.stdout


def test_output_beyond_max_output_is_truncated_and_flagged(isol8: Isol8) -> None:
    code = "import sys\nfor _ in range(10 * 1024):\n    sys.stdout.write('é' * 512)\nprint('done', file=sys.stderr)"
    done = isol8("run", "--max-output", "1024", "-e", code)
    assert done.status == 0
    assert len(done.stdout.encode()) <= 1024
    assert done.stdout == "é" * 512  # cut on a character boundary: 1024 bytes = 512 two-byte characters
    assert "done" in done.stderr  # the program kept running after the cut
    assert "[isol8] output truncated" in done.stderr
    as_json = json.loads(isol8("run", "--json", "--max-output", "1024", "-e", code).stdout)
    assert as_json["truncated"] is True


def test_five_megabyte_script_runs(isol8: Isol8, tmp_path: Path) -> None:
    script = tmp_path / "big.py"
    script.write_text("data = '" + "x" * (5 * 1024 * 1024) + "'\nprint(len(data))\n")
    done = isol8("run", str(script))
    assert (done.status, done.stdout) == (0, f"{5 * 1024 * 1024}\n"), done.stderr[-500:]


def test_files_with_nested_folders_modes_and_skips(isol8: Isol8, tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "data.txt").write_text("nested\n")
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "main.py").write_text(
        "import os, subprocess, pkg\n"
        "print(open('pkg/sub/data.txt').read().strip())\n"
        "print(subprocess.run(['./tool.sh'], capture_output=True, text=True).stdout.strip())\n"
        "print(sorted(os.listdir('.')))\n"
    )
    done = isol8("run", "--files", str(tmp_path), str(tmp_path / "main.py"))
    assert done.status == 0, done.stderr
    assert done.stdout.splitlines() == ["nested", "tool ran", "['main.py', 'pkg', 'tool.sh']"]


def test_workdir_inside_sandbox_and_refused_outside(isol8: Isol8) -> None:
    done = isol8("run", "--workdir", "project/src", "--cmd", "pwd")
    assert (done.status, done.stdout) == (0, "/sandbox/project/src\n")
    refused = isol8("run", "--workdir", "/sandbox/../etc", "--cmd", "pwd")
    assert refused.status == 2
    assert "inside /sandbox" in refused.stderr


def test_timeout_kills_promptly(isol8: Isol8) -> None:
    done = isol8("run", "--timeout", "1s", "-e", "print('started', flush=True)\nwhile True: pass")
    assert done.status == 124
    assert done.seconds < 3.0
    assert done.stdout == "started\n"  # output produced before the deadline is kept
    assert "isol8: execution timed out after 1s" in done.stderr


def test_bare_number_timeout_is_milliseconds(isol8: Isol8) -> None:
    done = isol8("run", "--timeout", "800", "-e", "import time; time.sleep(5)")
    assert done.status == 124
    assert "timed out after 800ms" in done.stderr


def test_memory_bomb_reports_out_of_memory(isol8: Isol8) -> None:
    done = isol8("run", "--memory", "64m", "-e", "b = bytearray(512 * 1024 * 1024)\nprint('unreachable')")
    assert done.status == 137
    assert done.stdout == ""
    assert "out of memory" in done.stderr and "64m" in done.stderr
    assert "timed out" not in done.stderr
    result = json.loads(isol8("run", "--json", "--memory", "64m", "-e", "b = bytearray(512 * 1024 * 1024)").stdout)
    assert (result["exitCode"], result["oomKilled"], result["timedOut"]) == (137, True, False)


def test_usage_errors_exit_2_and_list_runtimes(isol8: Isol8, tmp_path: Path) -> None:
    unknown = isol8("run", "-r", "cobol", "-e", "x")
    assert unknown.status == 2
    assert "python, node, bun, deno, bash" in unknown.stderr
    odd = tmp_path / "script.rb"
    odd.write_text("puts 1")
    assert isol8("run", str(odd)).status == 2


def test_engine_failure_before_the_program_runs_is_125(isol8: Isol8) -> None:
    done = isol8("run", "--image", "localhost/isol8-no-such-image:none", "-e", "print(1)")
    assert done.status == 125
    assert "isol8: error:" in done.stderr


def test_persist_keeps_the_container_and_names_it(isol8: Isol8, engine: str) -> None:
    import subprocess

    done = isol8("run", "--persist", "-e", "print('kept')")
    assert done.status == 0
    name = done.stderr.strip().rsplit(" ", 1)[-1]
    assert name.startswith("isol8-")
    try:
        inspect = subprocess.run([engine, "container", "inspect", name], capture_output=True, text=True)
        assert inspect.returncode == 0
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True)


def test_setup_scripts_run_first_as_the_sandbox_user(isol8: Isol8) -> None:
    done = isol8(
        "run",
        "--setup",
        "mkdir -p data && id -u > data/uid",
        "--setup",
        "cat; echo prepared",  # the program's stdin is not the setup's to read
        "--stdin",
        "for the program",
        "-e",
        "import sys; print(open('data/uid').read().strip(), sys.stdin.read())",
    )
    assert (done.status, done.stdout) == (0, "prepared\n1100 for the program\n"), done.stderr


def test_a_failing_setup_script_keeps_the_program_from_running(isol8: Isol8) -> None:
    done = isol8("run", "--setup", "echo no tool >&2; exit 9", "--cmd", "echo the program ran")
    assert (done.status, done.stdout) == (9, "")
    assert done.stderr == "no tool\nSetup script failed (exit code 9)\n"


def test_a_setup_script_counts_within_the_time_limit(isol8: Isol8) -> None:
    done = isol8("run", "--timeout", "1s", "--setup", "sleep 30", "--cmd", "echo the program ran")
    assert (done.status, done.stdout) == (124, "")
    assert done.seconds < 5
