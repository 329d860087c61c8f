"""The locked-down container: SandboxPolicy (security defaults as data) rendered to `run` argv."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from isol8 import units
from isol8.backends.engine.argv import opt, repeat
from isol8.backends.engine.dialect import Dialect

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

    memory: int = 512 * units.MIB
    cpus: float = 1.0
    pids_limit: int = 64
    network: str = "none"
    sandbox_size: int = 512 * units.MIB
    tmp_size: int = 256 * units.MIB
    shm_size: int = 64 * units.MIB
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


def sandbox_flags(d: Dialect, policy: SandboxPolicy, *, keeper: bool = False) -> list[str]:
    """Every hardening flag of a run; tests/unit/test_argv.py pins them so none can slip out.

    keeper: a standby container, whose PID 1 and end-of-execution sweeps run as root with only
    CAP_KILL and CAP_CHOWN, out of reach of the sandbox user its executions run as (exec_argv)."""
    memory = str(policy.memory)
    return [
        "--read-only",
        *d.read_only_extra,
        "--tmpfs",
        f"{SANDBOX_DIR}:rw,exec,nosuid,nodev,size={policy.sandbox_size},mode=0700,"
        + d.tmpfs_owner(SANDBOX_UID, SANDBOX_GID),
        "--tmpfs",
        f"/tmp:rw,noexec,nosuid,nodev,size={policy.tmp_size},mode=1777",
        "--shm-size",
        str(policy.shm_size),
        "--user",
        "0:0" if keeper else SANDBOX_USER,
        "--cap-drop",
        "ALL",
        *(["--cap-add", "KILL", "--cap-add", "CHOWN"] if keeper else []),
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        f"seccomp={policy.seccomp_profile or default_seccomp_profile()}",
        "--pids-limit",
        str(policy.pids_limit + OWN_PIDS),
        "--memory",
        memory,
        "--memory-swap",
        memory,
        "--cpus",
        f"{policy.cpus:g}",
        "--network",
        policy.network,
        *repeat("--ulimit", (f"nproc={SANDBOX_NPROC}:{SANDBOX_NPROC}", f"nofile={SANDBOX_NOFILE}:{SANDBOX_NOFILE}")),
        # POSIX message queues are accounted per uid across the host: none at all in a sandbox
        "--ulimit",
        "msgqueue=0:0",
        *repeat("--tmpfs", (f"{path}:ro,nosuid,nodev,noexec,size=4k{d.tmpfs_no_copy}" for path in MASKED_DIRS)),
    ]


def _container_flags(
    d: Dialect, name: str, policy: SandboxPolicy, labels: Mapping[str, str], *, keeper: bool = False
) -> list[str]:
    """What every container isol8 starts shares: a name, no pulls, no log files, labels, the sandbox."""
    return [
        "--name",
        name,
        "--pull",
        "never",
        "--log-driver",
        "none",
        *repeat("--label", (f"{k}={v}" for k, v in labels.items())),
        *sandbox_flags(d, policy, keeper=keeper),
    ]


def run_argv(
    d: Dialect,
    *,
    name: str,
    image: str,
    policy: SandboxPolicy,
    labels: Mapping[str, str],
    command: Sequence[str],
    remove: bool = True,
    engine_timeout_s: int | None = None,
) -> list[str]:
    """`run` of one execution: stdin attached, isol8's wrapper as entrypoint, user values as elements.

    The program's environment travels on stdin (isol8.core.payload), never as --env: the wrapper
    shell must not see it. engine_timeout_s: where the engine has one (podman), its own kill
    after that long, a backstop that needs neither isol8 nor the container."""
    timeout = opt(d.run_timeout_flag, engine_timeout_s) if d.run_timeout_flag else []
    return [
        d.binary,
        "run",
        *(["--rm"] if remove else []),
        "-i",
        *_container_flags(d, name, policy, labels),
        "--init",
        *timeout,
        *opt("--workdir", SANDBOX_DIR),
        "--entrypoint",
        "/bin/bash",
        image,
        *command,
    ]


def exec_argv(d: Dialect, *, name: str, command: Sequence[str]) -> list[str]:
    """`exec` of one execution, as the sandbox user, in a started standby container (see standby_argv)."""
    return [d.binary, "exec", "-i", "--user", SANDBOX_USER, "--workdir", SANDBOX_DIR, name, "/bin/bash", *command]


def sweep_argv(d: Dialect, *, name: str) -> list[str]:
    """`exec` as root with CAP_KILL: ends every process in a standby container but its PID 1.

    The sandbox user can neither stop nor read a root process, so unlike the wrapper's own
    `kill -KILL -1` (which a program may disturb: it shares the wrapper's uid) this one holds."""
    return [d.binary, "exec", "--user", "0:0", name, "/bin/bash", "-c", "kill -KILL -1"]


# PID 1 of a standby container, as root: it gives /sandbox to the sandbox user (podman's tmpfs
# takes no uid=), outlives every `kill -KILL -1` (the kernel spares a namespace's init; the sandbox
# user cannot signal, trace or read it) and reaps the orphans executions leave (bash waits for any).
KEEPER = f"chown {SANDBOX_USER} {SANDBOX_DIR} || exit 1; while :; do sleep 86400 & wait $!; done"


def standby_argv(d: Dialect, *, name: str, image: str, policy: SandboxPolicy, labels: Mapping[str, str]) -> list[str]:
    """`run -d` of a locked-down container that idles until executions are exec'd into it."""
    return [
        d.binary,
        "run",
        "-d",
        *_container_flags(d, name, policy, labels, keeper=True),
        "--workdir",
        SANDBOX_DIR,
        "--entrypoint",
        "/bin/bash",
        image,
        "-c",
        KEEPER,
    ]
