"""Unit tests never read this machine's configuration: an empty home and no ISOL8_* variables."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for name in [n for n in os.environ if n.startswith("ISOL8_")]:
        monkeypatch.delenv(name)
