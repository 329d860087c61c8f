"""Every built-in default, written once, as a config file would say it.

The config schema and the typed config (isol8.config), SandboxPolicy and RunRequest (the
library), the server and the CLI help all read their defaults here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

# how --install gets packages into a run: a cached image that has them, or installed into the sandbox
INSTALL_STRATEGIES = ("image", "runtime")

DEFAULTS: dict[str, Any] = {
    "engine": None,
    "debug": False,
    "maxConcurrent": 10,
    "defaults": {
        "timeoutMs": 30_000,
        "memoryLimit": "512m",
        "cpuLimit": 1.0,
        "network": "none",
        "sandboxSize": "512m",
        "tmpSize": "256m",
        "shmSize": "64m",
        "pidsLimit": 64,
        "maxOutputSize": 1_048_576,
    },
    "network": {"whitelist": [], "blacklist": [], "allowPrivate": [], "hosts": {}},
    "outputFiles": {"maxFileSize": "16m", "maxTotalSize": "64m"},
    "security": {"seccompProfile": None},
    # where the engine's client is pointed (isol8.backends.open_backend): docker's context, host
    # and tlsCertPath, or podman's connection, url and identity; unset, the client's own choice
    "backend": {
        "context": None,
        "host": None,
        "tlsCertPath": None,
        "connection": None,
        "url": None,
        "identity": None,
        # kind kubernetes (isol8/backends/kubernetes): Pods through kubectl, context then being kubectl's
        "kind": None,
        "namespace": None,
        "runtimeClassName": None,
        "imagePullSecrets": [],
        "seccompLocalhost": None,
    },
    "packages": {
        "pipIndexUrl": None,
        "npmRegistry": None,
        "caBundle": "auto",
        "strategy": "image",
        "installTimeoutMs": 300_000,
    },
    "server": {
        "allowHostNetwork": False,
        "allowedHosts": [],
        "allowImages": False,
        "queueTimeoutMs": 30_000,
        "maxBodyBytes": 10_485_760,
        "poolSize": 2,
        "sessionIdleMs": 600_000,
        "fleet": None,  # replicas of one fleet share their sessions (found in the engine by label)
        "drainMs": None,  # after SIGTERM: how long /health?ready=1 says 503 before the listener closes
    },
    "registry": {
        "repository": None,  # where a fleet of engines shares custom images (build --push, run --install)
        "tlsVerify": True,
    },
    "baseImages": {},
    "prebuiltImages": [],
}

RUN: dict[str, Any] = DEFAULTS["defaults"]
SERVER: dict[str, Any] = DEFAULTS["server"]
