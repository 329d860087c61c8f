"""Which engine to drive: the one asked for, else a docker whose daemon answers, else podman."""

from __future__ import annotations

import os
from collections.abc import Mapping

from isol8.backends.engine.dialect import DIALECTS, DOCKER, PODMAN, REMOTE_ENV, Dialect
from isol8.errors import EngineNotFound, UsageError


def _docker_daemon_answers(env: Mapping[str, str]) -> bool:
    """A cheap check (no subprocess) that a docker daemon listens: used only to auto-detect."""
    host = env.get("DOCKER_HOST", "")
    if env.get("DOCKER_CONTEXT") or (host and not host.startswith("unix://")):
        return True
    import _socket  # socket.py's enum wrappers would cost ~4 ms; the C module is enough, and only here

    path = host.removeprefix("unix://") or "/var/run/docker.sock"
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:  # blocking: a unix socket connect answers at once (a timeout would add a poll round trip)
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _on_path(name: str) -> bool:
    """Whether shutil.which finds a bare name on isol8's PATH (without importing shutil, bz2 and lzma)."""
    return any(
        os.path.isfile(path) and os.access(path, os.X_OK)
        for folder in os.get_exec_path()
        for path in [os.path.join(folder or ".", name)]
    )


def select_dialect(choice: str | None, env: Mapping[str, str] | None = None) -> Dialect:
    """--engine / ISOL8_ENGINE / config value (or the engine whose endpoint options were given) if
    given, else podman if only its client's environment points it somewhere, else a docker that
    answers, else podman."""
    env = os.environ if env is None else env
    if choice:
        try:
            return DIALECTS[choice]
        except KeyError:
            raise UsageError(f"unknown engine {choice!r} (choose docker or podman)") from None
    has_docker, has_podman = _on_path("docker"), _on_path("podman")
    pointed = [name for name, keys in REMOTE_ENV.items() if any(env.get(k) for k in keys)]
    if pointed == ["podman"] and has_podman:
        return PODMAN  # CONTAINER_HOST or CONTAINER_CONNECTION alone: podman's client is pointed somewhere
    if has_docker and _docker_daemon_answers(env):
        return DOCKER
    if has_podman:
        return PODMAN
    if has_docker:
        return DOCKER  # its own error message will say the daemon is down
    raise EngineNotFound(
        ["docker"],
        None,
        message="neither docker nor podman was found on PATH",
        hint="install one of them (scripts/ensure-engines does it on Debian)",
    )
