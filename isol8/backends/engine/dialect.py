"""Every difference between the docker and podman command lines, in one place."""

from __future__ import annotations

from collections.abc import Mapping

from isol8.errors import UsageError
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

    from isol8.models import EngineInfo


class Dialect(NamedTuple):
    name: str
    binary: str
    # how `version` proves the engine answers (podman has no daemon: its client version will do)
    version_format: str
    # podman mounts tmpfs on /tmp, /run, /var/tmp... under --read-only unless told not to
    read_only_extra: tuple[str, ...]
    # docker takes uid=/gid= as tmpfs options; podman rejects them and offers `U` (chown to --user)
    tmpfs_owner_by_uid: bool
    # podman names local builds localhost/NAME; docker keeps the short name
    local_prefix: str
    # podman fills a tmpfs with what the image has at that path unless told not to
    tmpfs_no_copy: str
    # podman's conmon kills a container that outlives `run --timeout`; docker has no such flag
    run_timeout_flag: str | None
    # podman's `rm -f` first stops a container politely and waits 10 s; a keeper (PID 1 ignores
    # SIGTERM) makes every removal take that long unless told not to wait. And it refuses to remove
    # a container whose network another joined (a filtered run's relay) unless --depend removes
    # that one too; docker tracks no such dependency
    rm_force: tuple[str, ...]
    # podman 4's conmon drops an empty file named `oom` in its working directory after an OOM kill
    # (containers/conmon#504): its client runs in a folder of isol8's own
    private_cwd: bool
    # the options that choose the engine's endpoint (Endpoint, with_endpoint): docker's context
    # and host, podman's connection and url; they come before the command
    context_flag: str
    host_flag: str
    # what the client passes before every command: the endpoint's options (with_endpoint)
    global_flags: tuple[str, ...] = ()
    # podman's client in remote mode sends `seccomp=PATH` for the service to open on its own
    # host (docker's client reads the file and sends its contents): a remote podman takes isol8's
    # profile from the image's io.containers.seccomp.profile label instead (--seccomp-policy=image)
    seccomp_from_image: bool = False
    # podman asks for HTTPS with verified certificates unless told otherwise (--tls-verify=false);
    # docker has no such option: its daemon's insecure-registries decide (127.0.0.0/8 by default)
    tls_verify_option: bool = False

    @property
    def cli(self) -> tuple[str, ...]:
        """The client and the options every command starts with."""
        return (self.binary, *self.global_flags)

    def seccomp_flags(self, profile: str | None, default: str) -> list[str]:
        """The sandbox's seccomp options: a configured profile (a path where the engine reads it),
        else isol8's own, from its file or, for a remote podman, from the image's label."""
        if profile is None and self.seccomp_from_image:
            return ["--seccomp-policy", "image"]
        return ["--security-opt", f"seccomp={profile or default}"]

    def local_image(self, ref: str) -> str:
        """The name under which a locally built `ref` is stored and found."""
        first, slash, _ = ref.partition("/")
        if not self.local_prefix or (slash and ("." in first or ":" in first or first == "localhost")):
            return ref  # already names a registry
        if _is_image_id(ref):
            return ref  # an image ID, not a name
        return self.local_prefix + ref

    def registry_flags(self, tls_verify: bool) -> list[str]:
        """The options of a push or pull for a registry whose certificate is not to be verified."""
        return ["--tls-verify=false"] if self.tls_verify_option and not tls_verify else []

    def tmpfs_owner(self, uid: int, gid: int) -> str:
        return f"uid={uid},gid={gid}" if self.tmpfs_owner_by_uid else "U"


DOCKER = Dialect(
    name="docker",
    binary="docker",
    version_format="{{.Server.Version}}",
    read_only_extra=(),
    tmpfs_owner_by_uid=True,
    local_prefix="",
    tmpfs_no_copy="",
    run_timeout_flag=None,
    rm_force=("-f",),
    private_cwd=False,
    context_flag="--context",
    host_flag="--host",
)

PODMAN = Dialect(
    name="podman",
    binary="podman",
    version_format="{{.Client.Version}}",
    read_only_extra=("--read-only-tmpfs=false",),
    tmpfs_owner_by_uid=False,
    local_prefix="localhost/",
    tmpfs_no_copy=",notmpcopyup",
    run_timeout_flag="--timeout",
    rm_force=("-f", "-t", "0", "--depend"),
    private_cwd=True,
    context_flag="--connection",
    host_flag="--url",
    tls_verify_option=True,
)

DIALECTS = {d.name: d for d in (DOCKER, PODMAN)}


class Endpoint(NamedTuple):
    """Which engine the client drives (the config's `backend` section, the global options): a
    docker context or podman connection by name, or a docker host or podman url (unix://,
    ssh://, tcp://); None leaves it to the client (DOCKER_HOST, DOCKER_CONTEXT, CONTAINER_HOST,
    CONTAINER_CONNECTION, the client's default). tls: docker's folder of ca.pem, cert.pem and
    key.pem for a tcp:// host; identity: podman's ssh key."""

    context: str | None = None
    host: str | None = None
    tls: str | None = None
    identity: str | None = None


# the config's `backend` keys (and the global options of the same names) that choose an endpoint:
# each is one engine's, and names an Endpoint field
ENDPOINT_KEYS = {
    "context": ("docker", "context"),
    "host": ("docker", "host"),
    "tlsCertPath": ("docker", "tls"),
    "connection": ("podman", "context"),
    "url": ("podman", "host"),
    "identity": ("podman", "identity"),
}


def endpoint_from(values: Mapping[str, str | None]) -> tuple[str | None, Endpoint]:
    """The engine those endpoint keys belong to (None if none is set) and their Endpoint."""
    given = {key: value for key, value in values.items() if value}
    engines = sorted({ENDPOINT_KEYS[key][0] for key in given})
    if len(engines) > 1:
        mixed = ", ".join(sorted(given))
        raise UsageError(
            f"{mixed}: docker's (context, host, tlsCertPath) and podman's (connection, url, identity) do not mix"
        )
    return (engines[0] if engines else None), Endpoint(**{ENDPOINT_KEYS[key][1]: value for key, value in given.items()})


# the environment through which each client is pointed elsewhere
REMOTE_ENV = {"docker": ("DOCKER_HOST", "DOCKER_CONTEXT"), "podman": ("CONTAINER_HOST", "CONTAINER_CONNECTION")}


def with_endpoint(d: Dialect, endpoint: Endpoint, env: Mapping[str, str]) -> Dialect:
    """d driving that endpoint: its options before every command; a podman whose client is
    remote (by those options or its environment) takes isol8's seccomp profile from the image."""
    if endpoint.context and endpoint.host:
        raise UsageError(f"{d.context_flag} and {d.host_flag} name two endpoints: give one")
    if endpoint.tls and d.name != "docker" or endpoint.identity and d.name != "podman":
        which = "tlsCertPath is docker's" if endpoint.tls else "identity is podman's"
        raise UsageError(f"backend.{which}, not {d.name}'s")
    flags = [*_opt(d.context_flag, endpoint.context), *_opt(d.host_flag, endpoint.host)]
    if endpoint.tls:
        tls = endpoint.tls.rstrip("/")
        flags += [
            "--tlsverify",
            *(f"--tls{k}={tls}/{f}.pem" for k, f in (("cacert", "ca"), ("cert", "cert"), ("key", "key"))),
        ]
    flags += _opt("--identity", endpoint.identity)
    remote = d.name == "podman" and bool(flags or any(env.get(k) for k in REMOTE_ENV["podman"]))
    return d._replace(global_flags=tuple(flags), seccomp_from_image=remote)


def endpoint_shown(d: Dialect, env: Mapping[str, str]) -> str | None:
    """Where d's client is pointed, as its options or environment say; None: the client's default."""
    if d.global_flags:
        return " ".join(d.global_flags)
    return " ".join(f"{k}={env[k]}" for k in REMOTE_ENV[d.name] if env.get(k)) or None


def endpoint_key(d: Dialect, env: Mapping[str, str]) -> str:
    """The engine's name, and a digest of where its client is pointed unless that is its default:
    isol8's on-disk answers about one engine's images are never another's."""
    where = [*d.global_flags, *(env.get(k, "") for k in REMOTE_ENV[d.name])]
    if not any(where):
        return d.name
    import hashlib

    return f"{d.name}-{hashlib.sha256(chr(0).join(where).encode()).hexdigest()[:8]}"


def _is_image_id(ref: str) -> bool:
    """(sha256:)?[0-9a-f]{64}, without a regular expression's compile on every run."""
    digits = ref.removeprefix("sha256:")
    return len(digits) == 64 and not digits.strip("0123456789abcdef")


def _opt(name: str, value: str | None) -> list[str]:
    """One word, NAME=VALUE: a value that begins with "-" is never taken for an option."""
    return [] if value is None else [f"{name}={value}"]


# `info` as JSON: docker takes a Go template, podman a format name
INFO_FORMAT = {"docker": "{{json .}}", "podman": "json"}


def parse_info(d: Dialect, data: Mapping[str, Any]) -> EngineInfo:
    """`info`'s JSON, whose shape differs: docker's is flat (controllers as MemoryLimit/PidsLimit/
    CpuCfsQuota flags, rootless among SecurityOptions), podman's nested under host/store/version."""
    from isol8.models import EngineInfo

    if d.name == "docker":
        options = [str(o) for o in data.get("SecurityOptions") or ()]
        flags = {"memory": "MemoryLimit", "pids": "PidsLimit", "cpu": "CpuCfsQuota"}
        return EngineInfo(
            server_version=str(data.get("ServerVersion", "")),
            rootless=any(o.startswith("name=rootless") for o in options),
            cgroup_version=f"v{data.get('CgroupVersion') or '1'}",
            controllers=tuple(name for name, key in flags.items() if data.get(key)),
            root_dir=str(data.get("DockerRootDir", "")),
            seccomp=any(o.startswith("name=seccomp") for o in options),
        )
    host, store = data.get("host") or {}, data.get("store") or {}
    security = host.get("security") or {}
    return EngineInfo(
        server_version=str((data.get("version") or {}).get("Version", "")),
        rootless=bool(security.get("rootless")),
        cgroup_version=str(host.get("cgroupVersion", "")),
        controllers=tuple(str(c) for c in host.get("cgroupControllers") or ()),
        root_dir=str(store.get("graphRoot", "")),
        seccomp=bool(security.get("seccompEnabled")),
    )
