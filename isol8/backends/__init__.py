"""Backends: what runs isol8's containers. The interface is backends/base.py; engine/ drives docker or podman.

A new kind of backend is a sub-package beside engine/ that implements base.Backend, chosen here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from collections.abc import Mapping

    from isol8.backends.base import Backend

ENGINES = ("docker", "podman")
KINDS = ("engine", "kubernetes")  # --backend: an engine (docker or podman), or Pods through kubectl


def open_backend(
    engine: str | None,
    endpoint: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    kind: str | None = None,
    kube: Mapping[str, object] | None = None,
) -> Backend:
    """The backend of kind (--backend / ISOL8_BACKEND / the config's backend.kind; default engine).

    An engine: the one named (--engine / ISOL8_ENGINE / the config), else the engine whose
    endpoint keys are set, else the one that answers; endpoint: the config's `backend` keys or
    the global options of the same names (context, host, tlsCertPath; connection, url, identity).
    Kubernetes: kube holds the config's `backend` keys for it (context, namespace...)."""
    import os

    from isol8.errors import UsageError

    env = os.environ if env is None else env
    kind = kind or env.get("ISOL8_BACKEND") or "engine"
    if kind not in KINDS:
        raise UsageError(f"backend {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "kubernetes":
        if engine or any((endpoint or {}).values()):
            raise UsageError(
                "the kubernetes backend runs no engine: --engine and the engine's endpoint options do not apply"
            )
        from isol8.backends.kubernetes.backend import KubeBackend
        from isol8.backends.kubernetes.manifest import kube_settings

        return KubeBackend(kube_settings(kube or {}))
    from isol8.backends.engine.backend import EngineBackend
    from isol8.backends.engine.detect import select_dialect
    from isol8.backends.engine.dialect import endpoint_from, with_endpoint

    owner, where = endpoint_from(endpoint or {})
    if engine and owner and engine != owner:
        keys = ", ".join(sorted(k for k, v in (endpoint or {}).items() if v))
        raise UsageError(f"{keys}: {owner}'s endpoint options, but the engine is {engine}")
    dialect = select_dialect(engine or owner, env)
    return EngineBackend(with_endpoint(dialect, where, env))
