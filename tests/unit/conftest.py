"""Unit tests never read this machine's configuration: an empty home and no ISOL8_* variables."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for name in [n for n in os.environ if n.startswith("ISOL8_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def processes_through_popen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process a unit test starts goes through subprocess.Popen, where pytest-subprocess's
    fp sees it: a run's engine client and watcher too, which start with posix_spawn outside
    tests (tests/unit/test_process.py tests that path with real processes)."""
    from isol8 import process, spawning

    monkeypatch.setattr(process, "spawn", spawning.popen)
