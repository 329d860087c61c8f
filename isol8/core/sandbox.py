"""The locked-down container as data: SandboxPolicy (the security defaults and limits) and ContainerSpec."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from isol8 import units
from isol8.defaults import RUN
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

    from isol8.core.egress import Egress

NETWORKS = ("none", "host", "filtered")

SANDBOX_UID = 1100
SANDBOX_GID = 1100
SANDBOX_DIR = "/sandbox"
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_GID}"
# RLIMIT_NPROC counts every process of a uid on the whole host, and every sandbox runs as 1100:
# left low, one run's processes make another's fork fail. It is raised out of the way (32768 is
# Linux's default pid_max) and --pids-limit, a cgroup of the container's own, is the limit.
SANDBOX_NPROC = 32768
# isol8's own processes in a run container (the init, the wrapper shell and its watchdog):
# --pids-limit N leaves N to the program, so 1 means the program alone.
OWN_PIDS = 3
SANDBOX_NOFILE = 4096
# /sys/kernel shows what helps an exploit and nothing a program needs: vmcoreinfo (the kernel's
# physical addresses), boot_params, notes (the build id), btf, slab statistics...
MASKED_DIRS = ("/sys/kernel",)


def default_seccomp_profile() -> str:
    """isol8's profile: the engines' default minus unshare/setns/mount/ptrace/bpf/io_uring... (scripts/gen-seccomp)."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "seccomp.json")


class _Policy(NamedTuple):
    memory: int
    cpus: float
    pids_limit: int
    network: str
    sandbox_size: int
    tmp_size: int
    shm_size: int
    seccomp_profile: str | None
    egress: Egress | None  # what a filtered network may reach (isol8.core.egress)


class SandboxPolicy(_Policy):
    """Sizes are bytes; each limit is checked (and a size text like "512m" parsed) by isol8.units,
    so no policy can hold a value an engine reads as "unlimited" (units.InvalidLimit otherwise)."""

    __slots__ = ()

    def __new__(
        cls,
        memory: int | str = RUN["memoryLimit"],
        cpus: float | str = RUN["cpuLimit"],
        pids_limit: int | str = RUN["pidsLimit"],
        network: str = RUN["network"],
        sandbox_size: int | str = RUN["sandboxSize"],
        tmp_size: int | str = RUN["tmpSize"],
        shm_size: int | str = RUN["shmSize"],
        seccomp_profile: str | None = None,
        egress: Egress | None = None,
    ) -> SandboxPolicy:
        def parsed(name: str, parse: Callable[[object], Any], value: object) -> Any:
            try:
                return parse(value)
            except units.InvalidLimit as exc:
                raise units.InvalidLimit(f"{name}: {exc}") from None

        if network not in NETWORKS:
            raise ValueError(f"network must be none, host or filtered, not {network!r}")
        if (network == "filtered") != (egress is not None):
            raise ValueError("a filtered network needs its egress (allowed hosts), and only it has one")
        if seccomp_profile == "unconfined":
            raise ValueError("isol8 never runs code without a seccomp profile")
        return super().__new__(
            cls,
            parsed("memory", units.memory, memory),
            parsed("cpus", units.cpus, cpus),
            parsed("pids_limit", units.pids, pids_limit),
            network,
            parsed("sandbox_size", units.tmpfs_size, sandbox_size),
            parsed("tmp_size", units.tmpfs_size, tmp_size),
            parsed("shm_size", units.tmpfs_size, shm_size),
            seccomp_profile,
            egress,
        )

    def _replace(self, **changes: Any) -> SandboxPolicy:
        """A copy with changes, checked like a new policy."""
        return SandboxPolicy(**{**self._asdict(), **changes})


def valid_env_name(name: str) -> bool:
    """[A-Za-z_][A-Za-z0-9_]*: an ASCII identifier, without a regular expression's compile."""
    return name.isascii() and name.isidentifier()


# PID 1 of a standby container, as root: it gives /sandbox to the sandbox user (podman's tmpfs
# takes no uid=), outlives every `kill -KILL -1` (the kernel spares a namespace's init; the sandbox
# user cannot signal, trace or read it) and reaps the orphans executions leave (bash waits for any).
KEEPER = f"chown {SANDBOX_USER} {SANDBOX_DIR} || exit 1; while :; do sleep 86400 & wait $!; done"
# A standby container's own record, root's alone (mode 0700; the sandbox user can neither read nor
# fill it): a server session's turn, last use and run-time packages (backends/engine/argv.py's
# SESSION_CONTROL), so that any server replica sharing the engine finds them there.
CONTROL_DIR = "/run/isol8"


class ContainerSpec(NamedTuple):
    """A locked-down container to create: its unique name, image, sandbox and labels."""

    name: str
    image: str
    policy: SandboxPolicy
    labels: Mapping[str, str]


# The in-sandbox scripts of a backend's write_file and read_file (each backend's exec runs them as the
# sandbox user).
# "$1" is the path, an argument of its own: never part of the script's text
WRITE_FILE = 'mkdir -p -- "$(dirname -- "$1")" && cat >"$1"'

# a regular file only (not a FIFO that never ends, nor a device), and at most $2 bytes of it, read by the
# system's own head (never one found on a PATH the sandbox can write to): the program
# that owns the sandbox can grow or swap the file while it is read, but never past the cap
READ_FILE = (
    '[ -e "$1" ] || { echo "no such file: $1" >&2; exit 1; }; '
    '[ -f "$1" ] || { echo "not a regular file: $1" >&2; exit 1; }; '
    'exec /usr/bin/head -c "$2" -- "$1"'
)
