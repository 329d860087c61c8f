"""The run path's import budget: what `isol8 run` loads on its way to the engine's Popen.

Every module here is paid for by every script that calls `isol8 run` once per snippet, so the
costly ones are kept off that path (measured in scripts/bench; nothing is timed here). The run
goes to a stand-in engine binary that answers as isol8's in-container wrapper would (its start
and exit lines, marked with the run's nonce from the payload's first line): the whole path of a
successful run is the real one, the engine's work aside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# each costs whole milliseconds of CPU per run; the run path needs none of them
DENIED = (
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "dataclasses",
    "socket",
    "ipaddress",
    "pathlib",
    "urllib.parse",
    "asyncio",
    "yaml",
    "tenacity",
    "tarfile",
    "tempfile",
    "hashlib",
    "starlette",
    "uvicorn",
    "logging",
    "shutil",
    "bz2",
    "lzma",
    "typing",  # isol8.records' NamedTuple is typing's without it
    "copy",  # and weakref with it: config data is copied by isol8.config.layers.copied
    "weakref",
    "shlex",  # only the debug log and --dry-run join argv
    "zlib",  # extension modules: loading one costs a quarter to a third of a millisecond
    "binascii",
    "signal",  # its enums cost ~3M instructions: the run path takes the C module, _signal
    "isol8.backends.engine.classify",  # only once the engine has failed
    "isol8.backends.engine.session_record",  # sessions only
    "isol8.backends.engine.retry",  # only with the first idempotent engine call
)
FAKE_ENGINE = r"""#!/bin/sh
[ "$1" = run ] || exit 99
read -r nonce rest
echo 1
printf '\036isol8:%s:start\n\036isol8:%s:exit:0:0\n' "$nonce" "$nonce" >&2
cat >/dev/null
"""
ENTRY = "import re; from isol8.frontends.cli.main import entry; entry()"  # what the console script does


def loaded_by(args: list[str], tmp_path: Path, config: str | None = None) -> set[str]:
    """The modules `isol8 ARGS` imports, with a stand-in `docker` and `podman` whose run succeeds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for engine in ("docker", "podman"):
        fake = bin_dir / engine
        fake.write_text(FAKE_ENGINE)
        fake.chmod(0o755)
    home = tmp_path / "home"
    (home / ".isol8").mkdir(parents=True, exist_ok=True)
    if config is not None:
        (home / ".isol8" / "config.json").write_text(config)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8")}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    names = _imported(done.stderr)
    assert "isol8.frontends.cli.main" in names, done.stderr[-2000:]
    if args[-1] == "print(1)" or args[-1] == "echo 1":
        assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr[-2000:]
    return names - _at_start(env)


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def _at_start(env: dict[str, str]) -> set[str]:
    """What the interpreter loads before isol8 does (site, and an editable install's finder)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import re"], capture_output=True, text=True, env=env
    )
    return _imported(done.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "-e", "print(1)"],  # the engine auto-detected
        ["--engine", "docker", "run", "--net", "none", "--memory", "256m", "--cmd", "echo 1"],
        ["--engine", "podman", "run", "-e", "print(1)"],  # its client runs in a folder of isol8's
        ["run", "--help"],
        ["--help"],
    ],
    ids=" ".join,
)
def test_the_run_path_loads_nothing_costly(tmp_path: Path, args: list[str]) -> None:
    loaded = loaded_by(args, tmp_path)
    assert sorted(loaded & {*DENIED, "json"}) == []  # json too: there is no config file to read


# a run's engine client (podman's in a folder of its own) and the reaper's watcher start with
# posix_spawn: nothing of subprocess, whose contextlib and selectors (with math's extension
# module) come with it
SUBPROCESS = ("subprocess", "threading", "selectors", "locale", "contextlib", "math")


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_a_run_starts_its_processes_without_subprocess(tmp_path: Path, engine: str) -> None:
    loaded = loaded_by(["--engine", engine, "run", "-e", "print(1)"], tmp_path)
    assert sorted(loaded & {*DENIED, *SUBPROCESS}) == []


def test_help_loads_only_the_parser_and_its_texts(tmp_path: Path) -> None:
    """`isol8 --help` builds the command listing: argparse, and isol8's parser, help texts,
    defaults and units (for the defaults' help), not its errors or anything a run needs."""
    loaded = {name for name in loaded_by(["--help"], tmp_path) if name.startswith("isol8")}
    assert sorted(loaded - {"isol8", "isol8.frontends", "isol8.frontends.cli", "isol8.backends"}) == [
        "isol8.defaults",
        "isol8.frontends.cli.help",
        "isol8.frontends.cli.main",
        "isol8.frontends.cli.parser",
        "isol8.frontends.cli.run_flags",
        "isol8.units",
    ]


def test_a_json_config_loads_no_yaml(tmp_path: Path) -> None:
    loaded = loaded_by(["run", "-e", "print(1)"], tmp_path, config='{"defaults": {"timeoutMs": 5000}}')
    assert sorted(loaded & set(DENIED)) == []
    assert "json" in loaded  # the config was read


def test_the_check_sees_a_denied_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself can fail: a run path that imports inspect (here through a module that
    isol8's run path imports, shadowed by one that also imports inspect) is caught."""
    import isol8.units

    shadow = tmp_path / "shadow" / "isol8"
    shutil.copytree(Path(isol8.units.__file__).parent, shadow, ignore=shutil.ignore_patterns("__pycache__"))
    units = shadow / "units.py"
    units.write_text(units.read_text() + "\nimport inspect\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    assert "inspect" in loaded_by(["run", "-e", "print(1)"], tmp_path)


@pytest.mark.parametrize(("name", "parser"), [("config.json", "json"), ("config.yaml", "yaml")])
def test_an_unchanged_config_file_is_not_parsed_again(tmp_path: Path, name: str, parser: str) -> None:
    """The second run of an unchanged file loads no parser (isol8.config.parsed); a changed file
    is parsed again (and here refused)."""
    config = tmp_path / "home" / ".isol8" / name
    config.parent.mkdir(parents=True)
    config.write_text('{"defaults": {"timeoutMs": 5000}}')
    args = ["--engine", "docker", "run", "-e", "print(1)"]
    assert parser in loaded_by(args, tmp_path)
    assert sorted(loaded_by(args, tmp_path) & {*DENIED, parser}) == []
    config.write_text('{"defaults": {"timeoutMs": -5000}}')
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 2 and "timeoutMs" in done.stderr, done.stderr
