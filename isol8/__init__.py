"""isol8: run untrusted code snippets in locked-down Docker or Podman containers."""

from __future__ import annotations

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any


__version__ = "0.1.0"

# Exports load on first use, so `isol8 --help` and the man page builder import only the stdlib.
_EXPORTS = {
    "Backend": "isol8.backends.base",
    "open_backend": "isol8.backends",
    "EngineBackend": "isol8.backends.engine.backend",
    "Config": "isol8.config",
    "load_config": "isol8.config",
    "Isol8Error": "isol8.errors",
    "ConfigError": "isol8.errors",
    "UsageError": "isol8.errors",
    "EngineError": "isol8.errors",
    "EngineNotFound": "isol8.errors",
    "EngineUnavailable": "isol8.errors",
    "ImageNotFound": "isol8.errors",
    "BuildFailed": "isol8.errors",
    "EngineTimeout": "isol8.errors",
    "ImageInfo": "isol8.models",
    "plan_run": "isol8.core.plan",
    "result_json": "isol8.frontends.wire",
    "RunRequest": "isol8.core.runner",
    "RunResult": "isol8.core.runner",
    "Execution": "isol8.core.runner",
    "run": "isol8.core.runner",
    "SandboxPolicy": "isol8.core.sandbox",
    "make_egress": "isol8.core.egress",
    "InvalidHost": "isol8.core.egress",
    "InvalidLimit": "isol8.errors",
    "units": "isol8.units",
    "runtimes": "isol8.runtimes",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'isol8' has no attribute {name!r}")
    import importlib

    imported = importlib.import_module(module)
    return imported if module.endswith("." + name) else getattr(imported, name)
