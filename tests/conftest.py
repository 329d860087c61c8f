"""Shared test options and helpers."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, NoReturn

import pytest

from isol8.frontends.cli.main import main


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-engine-skip",
        action="store_true",
        default=False,
        help="fail integration tests instead of skipping them when an engine does not answer",
    )


class CliResult(NamedTuple):
    status: int
    stdout: str
    stderr: str


def _run_cli(*argv: str) -> CliResult:
    stdout, stderr = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=stdout, stderr=stderr)
    return CliResult(status, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """`isol8 ARGV...` in process: run_cli(*argv) -> CliResult(status, stdout, stderr)."""
    return _run_cli


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and home, and no ISOL8_* variables: no stray config or registry settings."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    for name in [n for n in os.environ if n.startswith("ISOL8_")]:
        monkeypatch.delenv(name)
    return cwd


def refuse_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any process isol8 starts from now on fails the test: isol8.process, the only module that
    starts them, has two ways, _run (one-shot calls) and spawn (the others)."""
    from isol8 import process

    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"a unit test started a process: {args[:1]}")

    monkeypatch.setattr(process, "_run", refused)
    monkeypatch.setattr(process, "spawn", refused)


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and refuses) any use of an engine or of a process; tests assert it stays empty."""
    from isol8.frontends.cli.app import App

    calls: list[str] = []

    def refuse(app: App) -> None:
        calls.append("App.backend")
        raise AssertionError("a unit test asked for the engine")

    monkeypatch.setattr(App, "backend", property(refuse))
    refuse_processes(monkeypatch)
    return calls
