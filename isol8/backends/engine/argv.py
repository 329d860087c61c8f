"""Pure builders of docker/podman argv, the sandbox's flags among them: no I/O, every user value its own element."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from isol8.backends.engine.dialect import INFO_FORMAT, Dialect
from isol8.core.sandbox import (
    CONTROL_DIR,
    KEEPER,
    MASKED_DIRS,
    OWN_PIDS,
    READ_FILE,
    SANDBOX_DIR,
    SANDBOX_GID,
    SANDBOX_NOFILE,
    SANDBOX_NPROC,
    SANDBOX_UID,
    SANDBOX_USER,
    WRITE_FILE,
    SandboxPolicy,
    default_seccomp_profile,
)


def opt(name: str, value: object | None) -> list[str]:
    return [] if value is None else [name, str(value)]


def flag(name: str, on: bool) -> list[str]:
    return [name] if on else []


def repeat(name: str, values: Iterable[object]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [name, str(value)]
    return out


def label_filters(labels: Mapping[str, str | None]) -> list[str]:
    return repeat("--filter", (f"label={k}" if v is None else f"label={k}={v}" for k, v in labels.items()))


def version_argv(d: Dialect) -> list[str]:
    return [*d.cli, "version", "--format", d.version_format]


def image_inspect_argv(d: Dialect, refs: Sequence[str]) -> list[str]:
    return [*d.cli, "image", "inspect", *refs]


def images_argv(d: Dialect, labels: Mapping[str, str | None]) -> list[str]:
    return [*d.cli, "images", "-q", "--no-trunc", *label_filters(labels)]


def dangling_images_argv(d: Dialect) -> list[str]:
    return [*d.cli, "images", "-q", "--no-trunc", "--filter", "dangling=true"]


def build_argv(
    d: Dialect,
    *,
    tag: str,
    context: str,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    iidfile: str | None = None,
    pull: bool = False,
) -> list[str]:
    return [
        *d.cli,
        "build",
        "--force-rm",
        *flag("--pull", pull),
        *opt("-f", dockerfile),
        *repeat("--build-arg", (f"{k}={v}" for k, v in (build_args or {}).items())),
        *repeat("--label", (f"{k}={v}" for k, v in (labels or {}).items())),
        *opt("--iidfile", iidfile),
        "-t",
        d.local_image(tag),
        context,
    ]


def info_argv(d: Dialect) -> list[str]:
    return [*d.cli, "info", "--format", INFO_FORMAT[d.name]]


def pull_argv(d: Dialect, ref: str, *, tls_verify: bool = True) -> list[str]:
    return [*d.cli, "pull", "-q", *d.registry_flags(tls_verify), ref]


def push_argv(d: Dialect, ref: str, *, tls_verify: bool = True) -> list[str]:
    return [*d.cli, "push", "-q", *d.registry_flags(tls_verify), ref]


def tag_argv(d: Dialect, image: str, ref: str) -> list[str]:
    return [*d.cli, "tag", image, ref]


def rmi_argv(d: Dialect, refs: Sequence[str]) -> list[str]:
    return [*d.cli, "rmi", *refs]


def ps_argv(d: Dialect, labels: Mapping[str, str | None]) -> list[str]:
    return [*d.cli, "ps", "-a", "-q", "--no-trunc", *label_filters(labels)]


def container_inspect_argv(d: Dialect, ids: Sequence[str]) -> list[str]:
    return [*d.cli, "container", "inspect", *ids]


def rm_argv(d: Dialect, ids: Sequence[str]) -> list[str]:
    return [*d.cli, "rm", *d.rm_force, *ids]


def kill_argv(d: Dialect, *names: str) -> list[str]:
    """`kill` (SIGKILL)."""
    return [*d.cli, "kill", *names]


# the network of a run-time install's installer (isol8.core.installs): the engine's default one, as
# its builds have; no --network flag at all. Only isol8's installer runs there, never a program.
ENGINE_NETWORK = ""


def sandbox_flags(d: Dialect, policy: SandboxPolicy, *, keeper: bool = False, network: str | None = None) -> list[str]:
    """Every hardening flag of a run; tests/unit/test_argv.py pins them so none can slip out.

    keeper: a standby container, whose PID 1 and end-of-execution sweeps run as root with only
    CAP_KILL and CAP_CHOWN, out of reach of the sandbox user its executions run as (exec_argv).
    network: a filtered run's, `container:<its relay>` (relay_argv), or ENGINE_NETWORK for an
    installer, whose policy has none; no other run has one."""
    installer = network == ENGINE_NETWORK
    if installer and (policy.network != "none" or keeper):
        raise ValueError("an installer is a one-shot run whose policy has no network of its own")
    if not installer and (policy.network == "filtered") != (network is not None):
        raise ValueError("a filtered run, and only it, runs on its relay's network")
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
        *(["--tmpfs", f"{CONTROL_DIR}:rw,noexec,nosuid,nodev,size=1m,mode=0700"] if keeper else []),
        "--security-opt",
        "no-new-privileges",
        *d.seccomp_flags(policy.seccomp_profile, default_seccomp_profile()),
        "--pids-limit",
        str(policy.pids_limit + OWN_PIDS),
        "--memory",
        memory,
        "--memory-swap",
        memory,
        "--cpus",
        f"{policy.cpus:g}",
        *([] if installer else ["--network", network or policy.network]),
        *repeat("--ulimit", (f"nproc={SANDBOX_NPROC}:{SANDBOX_NPROC}", f"nofile={SANDBOX_NOFILE}:{SANDBOX_NOFILE}")),
        # POSIX message queues are accounted per uid across the host: none at all in a sandbox
        "--ulimit",
        "msgqueue=0:0",
        *repeat("--tmpfs", (f"{path}:ro,nosuid,nodev,noexec,size=4k{d.tmpfs_no_copy}" for path in MASKED_DIRS)),
    ]


def _container_flags(
    d: Dialect,
    name: str,
    policy: SandboxPolicy,
    labels: Mapping[str, str],
    *,
    keeper: bool = False,
    network: str | None = None,
) -> list[str]:
    """What every sandbox container shares: its identity flags and the sandbox."""
    return [*_identity_flags(name, labels), *sandbox_flags(d, policy, keeper=keeper, network=network)]


def _identity_flags(name: str, labels: Mapping[str, str]) -> list[str]:
    """What every container isol8 starts shares: a name, no pulls, no log files, labels."""
    return [
        "--name",
        name,
        "--pull",
        "never",
        "--log-driver",
        "none",
        *repeat("--label", (f"{k}={v}" for k, v in labels.items())),
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
    network: str | None = None,
) -> list[str]:
    """`run` of one execution: stdin attached, isol8's wrapper as entrypoint, user values as elements.

    The program's environment travels on stdin (isol8.core.payload), never as --env: the wrapper
    shell must not see it. engine_timeout_s: where the engine has one (podman), its own kill
    after that long, a backstop that needs neither isol8 nor the container."""
    timeout = opt(d.run_timeout_flag, engine_timeout_s) if d.run_timeout_flag else []
    return [
        *d.cli,
        "run",
        *(["--rm"] if remove else []),
        "-i",
        *_container_flags(d, name, policy, labels, network=network),
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
    return [*d.cli, "exec", "-i", "--user", SANDBOX_USER, "--workdir", SANDBOX_DIR, name, "/bin/bash", *command]


def standby_argv(d: Dialect, *, name: str, image: str, policy: SandboxPolicy, labels: Mapping[str, str]) -> list[str]:
    """`run -d` of a locked-down container that idles until executions are exec'd into it."""
    return [
        *d.cli,
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


def probe_argv(
    d: Dialect, *, name: str, image: str, policy: SandboxPolicy, labels: Mapping[str, str], command: Sequence[str]
) -> list[str]:
    """`run --rm` of a short command (reading an image's installed versions) in the sandbox, output captured."""
    return [
        *d.cli,
        "run",
        "--rm",
        *_container_flags(d, name, policy, labels),
        "--entrypoint",
        command[0],
        image,
        *command[1:],
    ]


def write_file_argv(d: Dialect, *, name: str, path: str) -> list[str]:
    """`exec -i` as the sandbox user that writes its stdin to path."""
    return [*d.cli, "exec", "-i", "--user", SANDBOX_USER, name, "/bin/bash", "-c", WRITE_FILE, "isol8", path]


def read_file_argv(d: Dialect, *, name: str, path: str, limit: int) -> list[str]:
    """`exec` as the sandbox user that prints the first limit bytes of path, a regular file."""
    return [*d.cli, "exec", "--user", SANDBOX_USER, name, "/bin/bash", "-c", READ_FILE, "isol8", path, str(limit)]


# -- a filtered run's egress (backends/engine/egress.py) -------------------------------------------
# The isol8:proxy image's user (Debian's `proxy`) and the folder of its unix socket, a volume that
# only the proxy and the relay mount.
PROXY_USER = "13:13"
EGRESS_DIR = "/run/isol8-egress"


def _egress_flags(d: Dialect, name: str, labels: Mapping[str, str], volume: str, *, memory: str) -> list[str]:
    """What the proxy and the relay share: no privileges, bounded, their socket's volume. No --rm:
    isol8 removes them, at once (podman's clients removing their own take longer)."""
    return [
        *_identity_flags(name, labels),
        "--init",
        "--read-only",
        *d.read_only_extra,
        "--user",
        PROXY_USER,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "256",
        "--memory",
        memory,
        "--memory-swap",
        memory,
        "--cpus",
        "1",
        "--volume",
        f"{volume}:{EGRESS_DIR}",
    ]


def volume_create_argv(d: Dialect, *, name: str, labels: Mapping[str, str]) -> list[str]:
    return [*d.cli, "volume", "create", *repeat("--label", (f"{k}={v}" for k, v in labels.items())), name]


def volume_rm_argv(d: Dialect, names: Sequence[str]) -> list[str]:
    return [*d.cli, "volume", "rm", "-f", *names]


def volumes_argv(d: Dialect, labels: Mapping[str, str | None]) -> list[str]:
    return [*d.cli, "volume", "ls", "-q", *label_filters(labels)]


def volume_inspect_argv(d: Dialect, names: Sequence[str]) -> list[str]:
    return [*d.cli, "volume", "inspect", *names]


def proxy_argv(
    d: Dialect, *, name: str, image: str, labels: Mapping[str, str], volume: str, hosts: Sequence[tuple[str, str]]
) -> list[str]:
    """`run -i` of a filtered run's egress proxy: on the engine's default network, its squid.conf
    read from stdin, its access log on stdout (isol8.core.egress)."""
    return [
        *d.cli,
        "run",
        "-i",
        *_egress_flags(d, name, labels, volume, memory="256m"),
        "--tmpfs",
        "/var/spool/squid:rw,noexec,nosuid,nodev,size=16m",
        "--tmpfs",
        "/run/squid:rw,noexec,nosuid,nodev,size=1m",
        *repeat("--add-host", (f"{host}:{address}" for host, address in hosts)),
        image,
        "proxy",
    ]


def relay_argv(d: Dialect, *, name: str, image: str, labels: Mapping[str, str], volume: str) -> list[str]:
    """`run` of the relay whose network (loopback alone) a filtered sandbox joins: its port on
    127.0.0.1 leads to the proxy's socket in the shared volume, and nowhere else."""
    return [
        *d.cli,
        "run",
        *_egress_flags(d, name, labels, volume, memory="64m"),
        "--network",
        "none",
        image,
        "relay",
    ]
