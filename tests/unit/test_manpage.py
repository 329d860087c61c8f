"""man/isol8.1 is generated from build_parser() by scripts/gen-manpage, committed, and kept current."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-manpage"
COMMITTED = ROOT / "man" / "isol8.1"


def generate(output: Path, **env_overrides: str) -> str:
    env = dict(os.environ)
    # the argparse-manpage of the interpreter running the tests comes first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(env_overrides)
    done = subprocess.run(
        ["bash", str(SCRIPT), str(output)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"scripts/gen-manpage failed:\n{done.stderr}"
    return output.read_text(encoding="utf-8")


def test_committed_man_page_is_current(tmp_path: Path) -> None:
    assert COMMITTED.is_file(), "man/isol8.1 is missing: run scripts/gen-manpage"
    generated = generate(tmp_path / "isol8.1")
    assert generated == COMMITTED.read_text(encoding="utf-8"), "man page is stale: run scripts/gen-manpage"


def test_generation_does_not_depend_on_the_date_or_terminal(tmp_path: Path) -> None:
    first = generate(tmp_path / "a.1", SOURCE_DATE_EPOCH="0", COLUMNS="200")
    second = generate(tmp_path / "b" / "c.1", SOURCE_DATE_EPOCH="2000000000", COLUMNS="40")
    assert first == second


def _sections(text: str, command: str) -> str:
    """The text of the .SH sections about `isol8 COMMAND`."""
    chunks = re.split(r"^(?=\.SH )", text, flags=re.MULTILINE)
    return "".join(c for c in chunks if c.partition("\n")[0].endswith(f"'isol8 {command}'\\/\\fR"))


def test_man_page_documents_every_command_and_option() -> None:
    from isol8.frontends.cli.parser import build_parser

    text = COMMITTED.read_text(encoding="utf-8")
    assert text.startswith('.TH ISOL8 "1" ')
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {
        "run",
        "build",
        "images",
        "list-custom",
        "resolve",
        "setup",
        "serve",
        "mcp",
        "config",
        "doctor",
        "cleanup",
    }
    seen: set[int] = set()
    for name, sub in commands.choices.items():
        if id(sub) in seen:
            continue  # an alias (list-custom) shares its command's section
        seen.add(id(sub))
        section = _sections(text, name)
        assert section, f"no section for isol8 {name}"
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    escaped = option.replace("-", "\\-")
                    assert f"\\fB{escaped}\\fR" in section, f"isol8 {name} {option} is not documented"


def _render() -> subprocess.CompletedProcess[str]:
    if shutil.which("groff"):
        argv = ["groff", "-man", "-Tascii", "-ww", str(COMMITTED)]
    elif shutil.which("man"):
        argv = ["man", "-l", str(COMMITTED)]
    else:
        if os.environ.get("CI"):
            pytest.fail("neither groff nor man is installed (scripts/test-all installs groff-base)")
        pytest.skip("neither groff nor man is installed")
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_man_page_renders_without_warnings() -> None:
    done = _render()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    plain = re.sub(".\x08", "", done.stdout)  # drop nroff's overstrike bold and underline
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS"):
        assert f"\n{heading}\n" in plain, heading
    assert "isol8 - run untrusted code" in plain
    assert "--timeout DURATION" in plain
