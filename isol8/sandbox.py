"""The locked-down container: SandboxPolicy (security defaults as data) rendered to `run` argv."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from isol8 import units
from isol8.argv import opt, repeat
from isol8.dialect import Dialect

SANDBOX_UID = 1100
SANDBOX_GID = 1100
SANDBOX_DIR = "/sandbox"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def default_seccomp_profile() -> str:
    """isol8's profile: the engines' default minus unshare/setns/mount/ptrace/bpf/io_uring... (scripts/gen-seccomp)."""
    return os.path.join(os.path.dirname(__file__), "data", "seccomp.json")


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
    seccomp_profile: str | None = None

    def __post_init__(self) -> None:
        for name, parse in (
            ("memory", units.memory),
            ("cpus", units.cpus),
            ("pids_limit", units.pids),
            ("sandbox_size", units.tmpfs_size),
            ("tmp_size", units.tmpfs_size),
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


def sandbox_flags(d: Dialect, policy: SandboxPolicy) -> list[str]:
    """Every hardening flag of a run; tests/unit/test_sandbox.py pins them so none can slip out."""
    memory = str(policy.memory)
    return [
        "--read-only",
        *d.read_only_extra,
        "--tmpfs",
        f"{SANDBOX_DIR}:rw,exec,nosuid,nodev,size={policy.sandbox_size},mode=0700,"
        + d.tmpfs_owner(SANDBOX_UID, SANDBOX_GID),
        "--tmpfs",
        f"/tmp:rw,noexec,nosuid,nodev,size={policy.tmp_size},mode=1777",
        "--user",
        f"{SANDBOX_UID}:{SANDBOX_GID}",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        f"seccomp={policy.seccomp_profile or default_seccomp_profile()}",
        "--pids-limit",
        str(policy.pids_limit),
        "--memory",
        memory,
        "--memory-swap",
        memory,
        "--cpus",
        f"{policy.cpus:g}",
        "--network",
        policy.network,
        "--init",
    ]


def _container_flags(d: Dialect, name: str, policy: SandboxPolicy, labels: Mapping[str, str]) -> list[str]:
    """What every container isol8 starts shares: a name, no pulls, no log files, labels, the sandbox."""
    return [
        "--name",
        name,
        "--pull",
        "never",
        "--log-driver",
        "none",
        *repeat("--label", (f"{k}={v}" for k, v in labels.items())),
        *sandbox_flags(d, policy),
    ]


def run_argv(
    d: Dialect,
    *,
    name: str,
    image: str,
    policy: SandboxPolicy,
    labels: Mapping[str, str],
    env: Mapping[str, str],
    env_by_name: Sequence[str],
    command: Sequence[str],
    remove: bool = True,
) -> list[str]:
    """`run` of one execution: stdin attached, isol8's wrapper as entrypoint, user values as elements."""
    return [
        d.binary,
        "run",
        *(["--rm"] if remove else []),
        "-i",
        *_container_flags(d, name, policy, labels),
        *repeat("--env", (f"{k}={v}" for k, v in env.items())),
        *repeat("--env", env_by_name),
        *opt("--workdir", SANDBOX_DIR),
        "--entrypoint",
        "/bin/bash",
        image,
        *command,
    ]


def exec_argv(
    d: Dialect, *, name: str, env: Mapping[str, str], env_by_name: Sequence[str], command: Sequence[str]
) -> list[str]:
    """`exec` of one execution in a started standby container (see standby_argv)."""
    return [
        d.binary,
        "exec",
        "-i",
        *repeat("--env", (f"{k}={v}" for k, v in env.items())),
        *repeat("--env", env_by_name),
        "--workdir",
        SANDBOX_DIR,
        name,
        "/bin/bash",
        *command,
    ]


def standby_argv(d: Dialect, *, name: str, image: str, policy: SandboxPolicy, labels: Mapping[str, str]) -> list[str]:
    """`run -d` of a locked-down container that idles until one execution is exec'd into it."""
    return [
        d.binary,
        "run",
        "-d",
        *_container_flags(d, name, policy, labels),
        "--workdir",
        SANDBOX_DIR,
        "--entrypoint",
        "/bin/bash",
        image,
        "-c",
        "exec sleep infinity",
    ]
