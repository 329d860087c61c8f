"""The locked-down container as data: SandboxPolicy (the security defaults and limits) and ContainerSpec."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from isol8 import units
from isol8.defaults import RUN

SANDBOX_UID = 1100
SANDBOX_GID = 1100
SANDBOX_DIR = "/sandbox"
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_GID}"
# RLIMIT_NPROC counts every process of a uid on the whole host, and every sandbox runs as 1100:
# left low, one run's processes make another's fork fail. It is raised out of the way (32768 is
# Linux's default pid_max) and --pids-limit, a cgroup of the container's own, is the limit.
SANDBOX_NPROC = 32768
# isol8's own processes in a run container (the init, the wrapper shell, its watchdog and the
# watchdog's sleep): --pids-limit N leaves N to the program, so 1 means the program alone.
OWN_PIDS = 4
SANDBOX_NOFILE = 4096
# /sys/kernel shows what helps an exploit and nothing a program needs: vmcoreinfo (the kernel's
# physical addresses), boot_params, notes (the build id), btf, slab statistics...
MASKED_DIRS = ("/sys/kernel",)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def default_seccomp_profile() -> str:
    """isol8's profile: the engines' default minus unshare/setns/mount/ptrace/bpf/io_uring... (scripts/gen-seccomp)."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "seccomp.json")


@dataclass(frozen=True)
class SandboxPolicy:
    """Sizes are bytes; each limit is checked (and a size text like "512m" parsed) by isol8.units,
    so no policy can hold a value an engine reads as "unlimited" (units.InvalidLimit otherwise)."""

    memory: int = units.memory(RUN["memoryLimit"])
    cpus: float = units.cpus(RUN["cpuLimit"])
    pids_limit: int = units.pids(RUN["pidsLimit"])
    network: str = RUN["network"]
    sandbox_size: int = units.tmpfs_size(RUN["sandboxSize"])
    tmp_size: int = units.tmpfs_size(RUN["tmpSize"])
    shm_size: int = units.tmpfs_size(RUN["shmSize"])
    seccomp_profile: str | None = None

    def __post_init__(self) -> None:
        for name, parse in (
            ("memory", units.memory),
            ("cpus", units.cpus),
            ("pids_limit", units.pids),
            ("sandbox_size", units.tmpfs_size),
            ("tmp_size", units.tmpfs_size),
            ("shm_size", units.tmpfs_size),
        ):
            try:
                object.__setattr__(self, name, parse(getattr(self, name)))
            except units.InvalidLimit as exc:
                raise units.InvalidLimit(f"{name}: {exc}") from None
        if self.network not in ("none", "host"):
            raise ValueError(f"network must be none or host, not {self.network!r}")
        if self.seccomp_profile == "unconfined":
            raise ValueError("isol8 never runs code without a seccomp profile")


def valid_env_name(name: str) -> bool:
    return bool(_ENV_NAME.fullmatch(name))


# PID 1 of a standby container, as root: it gives /sandbox to the sandbox user (podman's tmpfs
# takes no uid=), outlives every `kill -KILL -1` (the kernel spares a namespace's init; the sandbox
# user cannot signal, trace or read it) and reaps the orphans executions leave (bash waits for any).
KEEPER = f"chown {SANDBOX_USER} {SANDBOX_DIR} || exit 1; while :; do sleep 86400 & wait $!; done"


@dataclass(frozen=True)
class ContainerSpec:
    """A locked-down container to create: its unique name, image, sandbox and labels."""

    name: str
    image: str
    policy: SandboxPolicy
    labels: Mapping[str, str]
