"""Run-time installs (`--install-strategy runtime`, a session's later packages): the packages are
installed by a one-shot installer container of the sandbox's own image, on the network the engine's
builds have, and its installed folder travels into the sandbox as files. The sandbox itself never
gets a network: no program, and no process an earlier execution of a session left behind, can
reach out while the packages are fetched."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence

from isol8 import ecosystems
from isol8 import labels as L
from isol8.core.sandbox import ContainerSpec, SandboxPolicy
from isol8.ecosystems import CONTEXT_DIR, Spec
from isol8.errors import EngineError, ImageMissing, PackagesNotUnpacked, RunFailed, UsageError
from isol8.log import get_logger
from isol8.records import NamedTuple
from isol8.runtimes import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.backends.base import Backend
    from isol8.config import PackageSettings

log = get_logger(__name__)

STDERR_KEPT = 64 * 1024  # of the installer's words, the end is what explains a failure
MEMORY_MARGIN_KIB = 8192  # for tar and the shell while a tree is unpacked
SYSTEM_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# bash -c INSTALLER isol8-install DIRECTORY COMMAND BACKSTOP: a watchdog that ends everything after
# BACKSTOP seconds (one subshell waiting on a pipe, as the run wrapper's in isol8.core.payload:
# isol8's own processes stay OWN_PIDS), the context files from stdin into CONTEXT_DIR, the
# ecosystem's fixed COMMAND (its words on stderr) with the image's PATH (where its interpreter
# is), then /sandbox/DIRECTORY as a tar on stdout, by the system's tools (never a script the
# install put on that PATH).
INSTALLER = f"""
image_path=$PATH
{SYSTEM_PATH}
exec 4> >(exec >/dev/null 2>&1; read -r -t "$3"; kill -KILL -1)
mkdir -p {CONTEXT_DIR} && tar -x -f - -C {CONTEXT_DIR} || {{ echo "isol8: no install files" >&2; exit 125; }}
cd /sandbox && PATH=$image_path bash -c "$2" >&2 || exit
mkdir -p -- "/sandbox/$1" && tar -c -f - -C /sandbox -- "$1"
"""
# bash -c REPLACE isol8-packages DIRECTORY KIB, as the sandbox user in a session (with the system's
# tools, never ones the session put on its PATH): the new tree (the union of all its run-time
# installs, KIB once unpacked) is unpacked aside, then takes the earlier one's place. Its room is
# checked first, in /sandbox and in the memory limit that /sandbox's tmpfs counts against: a tree
# that fills the memory would end in an OOM kill that ends the session, not in ENOSPC. Exit 3: it
# did not fit, and the session is as it was; any other failure leaves it without its packages.
REPLACE = f"""
{SYSTEM_PATH}
free=$(df -Pk /sandbox | {{ read -r _ && read -r _ _ _ kib _ && echo "$kib"; }})
[ "${{free:-0}}" -gt "$2" ] || {{ echo "isol8: $2 KiB do not fit in /sandbox (${{free:-0}} KiB free)" >&2; exit 3; }}
cg=/sys/fs/cgroup
[ -r $cg/memory.max ] && max=$cg/memory.max used=$cg/memory.current ||
  max=$cg/memory/memory.limit_in_bytes used=$cg/memory/memory.usage_in_bytes  # cgroup v1
if read -r max 2>/dev/null <"$max" && [ "$max" != max ] && read -r used 2>/dev/null <"$used"; then
  spare=$(( (max - used) / 1024 - {MEMORY_MARGIN_KIB} ))
  [ "$spare" -gt "$2" ] || {{ echo "isol8: $2 KiB do not fit in the memory limit ($spare KiB spare)" >&2; exit 3; }}
fi
new=/sandbox/.isol8-new
rm -rf -- "$new" && mkdir -- "$new" && tar -x -f - -C "$new" || {{
  s=$?; rm -rf -- "$new"  # the check above can pass by a hair: tar is then what the kernel kills
  [ "$s" -lt 128 ] || echo "isol8: unpacking was killed (signal $((s - 128))), most likely at the memory limit" >&2
  exit 3
}}
rm -rf -- "/sandbox/$1" && mv -- "$new/$1" "/sandbox/$1" && rmdir -- "$new"
"""
NOT_UNPACKED = 3


class PackageTree(NamedTuple):
    """Installed packages as a tar of /sandbox/`directory`; `env` makes the program find them."""

    specs: tuple[Spec, ...]
    directory: str
    tar: bytes
    env: Mapping[str, str]


def install_tree(
    backend: Backend,
    runtime: Runtime,
    image: str,
    specs: Sequence[Spec],
    *,
    policy: SandboxPolicy,
    registry: PackageSettings,
    timeout_s: int,
    progress: Callable[[str], None] | None = None,
    labels: Mapping[str, str] | None = None,
) -> PackageTree:
    """Install specs with the image's own installer, within policy's limits (memory, pids, and
    /sandbox's size); RunFailed with the installer's last words if it fails.

    The tree is held in memory on its way into the sandbox, where it takes as much of /sandbox
    (a tmpfs: memory too), so it may be no larger than the smaller of the two limits."""
    plugin = ecosystems.of(runtime)
    if plugin.RUN_TIME_REFUSAL:
        raise UsageError(plugin.RUN_TIME_REFUSAL)
    # asked here: what the installer prints is the packages' to choose (a cluster's Pod says it itself)
    if backend.builds_images and backend.image(image) is None:
        raise ImageMissing(("install",), 125, message=f"image {image} not found", hint="run `isol8 setup`")
    ca = registry.ca_file()
    installer = plugin.runtime_installer(runtime, registry, ca is not None)
    files = {name: text.encode() for name, text in plugin.context_files(specs, (), registry).items()}
    if ca is not None:
        files["ca.pem"] = ca.read_bytes()
    name = L.container_name("install")
    tags = {**L.run_labels(name), L.RUNTIME: runtime.name, **(labels or {})}
    spec = ContainerSpec(name, image, policy._replace(network="none", egress=None), tags)
    command = ["-c", INSTALLER, "isol8-install", installer.directory, installer.command, str(timeout_s + 5)]
    limit = min(policy.sandbox_size, policy.memory)
    argv, code, tree, said = _collect(backend, spec, command, _tar(files), limit, progress, timeout_s)
    if code != 0:
        words = said.decode("utf-8", "replace").strip()
        raise RunFailed(argv, 125, "", words, message=f"package install failed (exit {code}): {_last_line(words)}")
    log.debug("installed %s into /sandbox/%s: %d bytes", [s.text for s in specs], installer.directory, len(tree))
    return PackageTree(tuple(specs), installer.directory, tree, installer.env)


def _collect(
    backend: Backend,
    spec: ContainerSpec,
    command: Sequence[str],
    stdin: bytes,
    limit: int,
    progress: Callable[[str], None] | None,
    timeout_s: int,
) -> tuple[tuple[str, ...], int, bytes, bytes]:
    """(argv, exit status, stdout, the end of stderr) of the installer; the container is gone afterwards."""
    out = io.BytesIO()  # the tree: its getvalue() hands over its buffer, never a second copy
    said = bytearray()
    deadline = time.monotonic() + timeout_s
    code: int | None = None
    argv: tuple[str, ...] = ()
    try:
        with backend.run_installer(spec, command, stdin=[stdin], backstop_s=timeout_s) as proc:
            argv = proc.argv
            for stream, data in proc.chunks(deadline):
                if stream == "stdout":
                    out.write(data)
                    if out.tell() > limit:
                        raise RunFailed(
                            proc.argv, 125, message=f"the installed packages exceed {limit} bytes (/sandbox or memory)"
                        )
                    continue
                said = (said + data)[-STDERR_KEPT:]
                if progress:
                    for line in data.decode("utf-8", "replace").splitlines():
                        progress(line)
            # the pipes ended (both, unless the deadline cut the reading short: then it is a timeout)
            code = proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
            if code is None or time.monotonic() >= deadline:
                code = None
                raise RunFailed(proc.argv, 124, message=f"package install took longer than {timeout_s}s")
    finally:
        if code == 0:
            backend.disown([spec.name])  # gone with the engine's --rm
        else:
            try:
                backend.remove_containers([spec.name])
            except EngineError as exc:
                log.warning("could not remove installer %s: %s", spec.name, exc)
    assert code is not None  # a wait that timed out raised
    return argv, code, out.getvalue(), bytes(said)


def replace_in(backend: Backend, container: str, tree: PackageTree, timeout_s: float) -> None:
    """Unpack tree into a standby container's /sandbox (a session), in place of its earlier one;
    PackagesNotUnpacked if it could not, which says whether the container kept what it had."""
    said = bytearray()
    argv = ["-c", REPLACE, "isol8-packages", tree.directory, str(unpacked_kib(tree.tar))]
    with backend.exec(container, argv, stdin=[tree.tar]) as proc:
        deadline = time.monotonic() + timeout_s
        for stream, data in proc.chunks(deadline):
            if stream == "stderr":
                said = (said + data)[-STDERR_KEPT:]
        code = proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
    late = code is None or time.monotonic() >= deadline
    if code == 0 and not late:
        return
    words = said.decode("utf-8", "replace").strip() or _silent_end(code, late)
    message = f"the installed packages could not be unpacked: {_last_line(words)}"
    raise PackagesNotUnpacked(proc.argv, 125, "", words, message=message, unchanged=code == NOT_UNPACKED)


def _silent_end(code: int | None, late: bool) -> str:
    """Why an unpacker that said nothing failed (or whose words the engine lost)."""
    if late:
        return "it took too long"
    if code == NOT_UNPACKED:  # its refusal, whose words podman's exec sometimes drops (its last output)
        return "they did not fit in /sandbox or in the memory limit"
    if code in (137, -9):  # SIGKILL: the kernel's OOM killer, in a container
        return "it was killed, most likely at the session's memory limit"
    return f"it ended with exit status {code}"


def unpacked_kib(tar: bytes) -> int:
    """What a tar takes once unpacked in a tmpfs, in KiB: each file in whole 4 KiB pages, and about
    1 KiB of the kernel's memory for every entry (the memory limit counts both)."""
    import tarfile

    pages = entries = 0
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        for member in archive:
            entries += 1
            pages += -(-member.size // 4096) if member.isreg() else 0
    return pages * 4 + entries


def _tar(files: Mapping[str, bytes]) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _last_line(words: str) -> str:
    lines = [line for line in words.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
