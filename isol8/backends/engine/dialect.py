"""Every difference between the docker and podman command lines, in one place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

    from isol8.models import EngineInfo

_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{64}")


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

    def local_image(self, ref: str) -> str:
        """The name under which a locally built `ref` is stored and found."""
        first, slash, _ = ref.partition("/")
        if not self.local_prefix or (slash and ("." in first or ":" in first or first == "localhost")):
            return ref  # already names a registry
        if _IMAGE_ID.fullmatch(ref):
            return ref  # an image ID, not a name
        return self.local_prefix + ref

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
)

DIALECTS = {d.name: d for d in (DOCKER, PODMAN)}

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
