"""Backends: what runs isol8's containers. The interface is backends/base.py; engine/ drives docker or podman.

A new kind of backend is a sub-package beside engine/ that implements base.Backend, chosen here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from collections.abc import Mapping

    from isol8.backends.base import Backend

ENGINES = ("docker", "podman")


def open_backend(engine: str | None, env: Mapping[str, str] | None = None) -> Backend:
    """The backend for an engine name (--engine / ISOL8_ENGINE / the config), else the one that answers."""
    from isol8.backends.engine.backend import EngineBackend
    from isol8.backends.engine.detect import select_dialect

    return EngineBackend(select_dialect(engine, env))
