"""isol8.runtimes: runtime names, detection by file extension, interpreter argv."""

from __future__ import annotations

import pytest

from isol8 import runtimes
from isol8.errors import UsageError
from isol8.frontends.cli import parser as cli
from isol8.status import ExitStatus


@pytest.mark.parametrize(
    ("filename", "runtime"),
    [
        ("main.py", "python"),
        ("index.js", "node"),
        ("module.mjs", "node"),
        ("common.cjs", "node"),
        ("app.ts", "bun"),
        ("app.mts", "deno"),
        ("script.sh", "bash"),
        ("MAIN.PY", "python"),
        ("Build.Sh", "bash"),
        ("archive.tar.sh", "bash"),
        ("src/pkg/tool.cjs", "node"),
        ("/abs/path/to/app.mts", "deno"),
        ("./dotted.dir/run.py", "python"),
    ],
)
def test_detect_by_extension(filename: str, runtime: str) -> None:
    assert runtimes.detect(filename).name == runtime


@pytest.mark.parametrize(
    "filename",
    ["script.rb", "Makefile", "main.py.bak", "main.", "notes.txt", "types.d.tsx", "folder.py/script", ".py"],
)
def test_detect_unknown_extension_is_a_usage_error_listing_the_runtimes(filename: str) -> None:
    with pytest.raises(UsageError) as caught:
        runtimes.detect(filename)
    message = str(caught.value)
    assert repr(filename) in message
    assert "--runtime" in message
    for name in runtimes.NAMES:
        assert name in message, f"{name} missing from: {message}"
    assert caught.value.exit_status == ExitStatus.USAGE


@pytest.mark.parametrize("name", ["python", "node", "bun", "deno", "bash"])
def test_get_known_runtime(name: str) -> None:
    runtime = runtimes.get(name)
    assert runtime.name == name
    assert runtime is runtimes.RUNTIMES[name]
    assert runtime.image == f"isol8:{name}"


@pytest.mark.parametrize("name", ["ruby", "", "py", "Python", "node "])
def test_get_unknown_runtime_is_a_usage_error_listing_the_runtimes(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        runtimes.get(name)
    message = str(caught.value)
    assert repr(name) in message
    assert "python, node, bun, deno, bash" in message


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("python", ["python3", "/sandbox/main.py"]),
        ("node", ["node", "/sandbox/main.py"]),
        ("bun", ["bun", "run", "/sandbox/main.py"]),
        ("deno", ["deno", "run", "--allow-all", "--no-prompt", "/sandbox/main.py"]),
        ("bash", ["bash", "/sandbox/main.py"]),
    ],
)
def test_command_is_the_exact_interpreter_argv(name: str, argv: list[str]) -> None:
    assert runtimes.get(name).command("/sandbox/main.py") == argv


@pytest.mark.parametrize(
    ("name", "extension"),
    [("python", ".py"), ("node", ".js"), ("bun", ".ts"), ("deno", ".mts"), ("bash", ".sh")],
)
def test_default_extension_detects_back_to_the_same_runtime(name: str, extension: str) -> None:
    runtime = runtimes.get(name)
    assert runtime.default_extension == extension
    assert runtimes.detect("main" + extension) is runtime


def test_every_extension_belongs_to_one_runtime() -> None:
    extensions = [ext for r in runtimes.RUNTIMES.values() for ext in r.extensions]
    assert len(extensions) == len(set(extensions))
    assert all(ext.startswith(".") and ext == ext.lower() for ext in extensions)


def test_cli_runtime_list_matches_the_runtimes_module() -> None:
    # the parser keeps its own copy so that `isol8 --help` imports neither dataclasses nor typing
    assert cli.RUNTIMES == runtimes.NAMES == ("python", "node", "bun", "deno", "bash")
