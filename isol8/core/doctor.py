"""The checks of `isol8 doctor`: one line each, passed or not, with a hint.

A required check that fails means `isol8 run` does not work; the others say what would fail
later (a rebuild, an install, a build on a full disk).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping

from isol8 import ecosystems
from isol8 import labels as L
from isol8.config import Config
from isol8.core.base_images import PROXY, build_hash, default_base_image, proxy_base
from isol8.core.egress import PROXY_IMAGE
from isol8.core.plan import plan_run
from isol8.core.runner import run
from isol8.ecosystems import Probe
from isol8.errors import Isol8Error, UsageError
from isol8.records import NamedTuple
from isol8.runtimes import RUNTIMES, Runtime

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Backend
    from isol8.models import EngineInfo

LIMIT_CONTROLLERS = ("memory", "pids", "cpu")
LOW_DISK = 2 << 30
PROBE_TIMEOUT_MS = 60_000
CA_IN_SANDBOX = "/sandbox/ca.pem"
# the sandbox's own view: is its seccomp filter on, and can it make a user namespace (it must not)
SANDBOX_PROBE = (
    "grep -m1 '^Seccomp:' /proc/self/status; "
    "if ! command -v unshare >/dev/null; then echo userns=untested; "
    "elif unshare -U true 2>/dev/null; then echo userns=open; else echo userns=blocked; fi"
)


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "hint": self.hint, "required": self.required}


def engine_checks(backend: Backend) -> tuple[list[Check], EngineInfo | None]:
    """The engine answers, and gives the cgroup controllers the limits need; (checks, its info)."""
    try:
        version = backend.version()
    except Isol8Error as exc:
        return [Check("engine", False, str(exc), exc.hint or f"start the {backend.name} service")], None
    checks = [Check("engine", True, f"{backend.name} {version}, reachable")]
    if not backend.builds_images:  # a cluster: its nodes' cgroups and images are not seen from here
        return checks, backend.info()
    try:
        info = backend.info()
    except Isol8Error as exc:
        return [*checks, Check("engine info", False, str(exc), f"`{backend.name} info` must work")], None
    mode = "rootless" if info.rootless else "rootful"
    checks.append(Check("mode", True, f"{mode}, seccomp {'available' if info.seccomp else 'NOT available'}"))
    missing = [c for c in LIMIT_CONTROLLERS if c not in info.controllers]
    detail = (
        f"cgroup {info.cgroup_version}, controllers {' '.join(c for c in LIMIT_CONTROLLERS if c in info.controllers)}"
    )
    hint = f"limits need the {', '.join(missing)} controller(s); a rootless engine on cgroup v2 needs them delegated"
    checks.append(Check("cgroups", not missing, detail + (f"; missing {' '.join(missing)}" if missing else ""), hint))
    return checks, info


def image_checks(backend: Backend, base_images: Mapping[str, str]) -> Iterator[Check]:
    """Each runtime image is there and up to date, and each base image it is built from is at hand."""
    for runtime in RUNTIMES.values():
        base = base_images.get(runtime.name) or default_base_image(runtime.name)
        current = backend.image(runtime.image)
        if current is None:
            hint = f"isol8 setup -r {runtime.name}"
            yield Check(f"image {runtime.image}", False, "missing", hint)
        elif current.labels.get(L.BUILD_HASH) != build_hash(runtime.name, base):
            hint = "isol8 setup rebuilds it (runs use it as it is until then)"
            yield Check(f"image {runtime.image}", False, f"out of date ({current.id[:12]})", hint, required=False)
        else:
            yield Check(f"image {runtime.image}", True, f"up to date ({current.id[:12]})")
        if backend.image(base) is not None:
            yield Check(f"base {runtime.name}", True, f"{base}: present", required=False)
        else:
            detail = f"{base}: not local; pulled from its registry only when isol8:{runtime.name} is rebuilt"
            yield Check(f"base {runtime.name}", False, detail, "set baseImages to an image you have", required=False)
    yield _proxy_check(backend, base_images)


def _proxy_check(backend: Backend, base_images: Mapping[str, str]) -> Check:
    """isol8:proxy, which only --net filtered needs: not having it fails no other run."""
    base = proxy_base(base_images) or default_base_image(PROXY)
    current = backend.image(PROXY_IMAGE)
    if current is None:
        return Check(f"image {PROXY_IMAGE}", False, "missing: --net filtered needs it", "isol8 setup -r proxy", False)
    if current.labels.get(L.BUILD_HASH) != build_hash(PROXY, base):
        return Check(f"image {PROXY_IMAGE}", False, f"out of date ({current.id[:12]})", "isol8 setup -r proxy", False)
    return Check(f"image {PROXY_IMAGE}", True, f"up to date ({current.id[:12]})", required=False)


def _probe_runtime(backend: Backend) -> Runtime | None:
    """The runtime with the smallest image there is: the quickest sandbox to start."""
    if not backend.builds_images:  # whether its nodes can pull it, the probe's own start tells
        return RUNTIMES["bash"]
    sizes = {rt: info.size for rt in RUNTIMES.values() if (info := backend.image(rt.image)) is not None}
    return min(sizes, key=lambda rt: sizes[rt]) if sizes else None


def sandbox_check(backend: Backend, config: Config) -> Check:
    """A real sandbox starts with the profile in force, its seccomp filter on, user namespaces refused."""
    profile = config.backend.seccomp_profile or "isol8's profile"
    if not backend.builds_images:  # a cluster's Pod: the nodes' profile the config names, or the runtime's
        local = config.backend.kube.get("seccompLocalhost")
        profile = f"the nodes' {local}" if local else "RuntimeDefault"
    runtime = _probe_runtime(backend)
    if runtime is None:
        return Check("sandbox", False, "no runtime image to start one in", "isol8 setup")
    try:
        asked = {"timeoutMs": PROBE_TIMEOUT_MS, "network": "none"}
        result = run(backend, plan_run(config, asked, runtime=runtime, cmd=SANDBOX_PROBE))
    except Isol8Error as exc:
        return Check("sandbox", False, f"did not start with {profile}: {exc}", "security.seccompProfile must load")
    seccomp_on = "Seccomp:\t2" in result.stdout
    blocked = "userns=blocked" in result.stdout
    if result.exit_code != 0 or not seccomp_on or not blocked:
        found = " ".join(result.stdout.split()) or result.stderr.strip()
        return Check("sandbox", False, f"with {profile}: {found}", "the seccomp profile must filter unshare")
    return Check("sandbox", True, f"starts; {profile} in force, user namespaces blocked")


def ca_check(config: Config) -> Check:
    setting = config.packages.ca_bundle
    try:
        ca = config.packages.ca_file()
    except UsageError as exc:
        return Check("CA bundle", False, str(exc), "set packages.caBundle to auto, none or a file", required=False)
    if ca is None:
        used = "none: installers trust their own roots only"
    else:
        used = f"the host's {ca}" if setting in ("auto", "system") else str(ca)
    return Check("CA bundle", True, f"{setting}: {used}", required=False)


def disk_check(info: EngineInfo, remote: bool) -> Check:
    if remote or not os.path.isdir(info.root_dir):
        return Check("disk", True, f"images live on the engine's host ({info.root_dir or 'unknown'})", required=False)
    free = shutil.disk_usage(info.root_dir).free
    detail = f"{free / (1 << 30):.1f} GiB free for images in {info.root_dir}"
    return Check("disk", free >= LOW_DISK, detail, "builds need about 1 GiB each; isol8 cleanup --images", False)


def network_checks(backend: Backend, config: Config) -> Iterator[Check]:
    """Each ecosystem's registry answers from a container (on the host's network)."""
    try:
        ca = config.packages.ca_file()
    except UsageError as exc:
        yield Check("registries", False, f"not tried: {exc}", "fix packages.caBundle (see the CA bundle line)", False)
        return
    seen = set()
    with tempfile.TemporaryDirectory(prefix="isol8-doctor-") as files:
        if ca is not None:
            shutil.copyfile(ca, os.path.join(files, "ca.pem"))
        for runtime in RUNTIMES.values():
            probe = ecosystems.of(runtime).registry_probe(runtime, config.packages, CA_IN_SANDBOX if ca else None)
            if probe is None or probe.label in seen:
                continue
            seen.add(probe.label)
            yield _reach(backend, config, runtime, probe, files)


def _reach(backend: Backend, config: Config, runtime: Runtime, probe: Probe, files: str) -> Check:
    if backend.image(runtime.image) is None:
        return Check(
            probe.label, False, f"not tried: {runtime.image} is missing", f"isol8 setup -r {runtime.name}", False
        )
    asked = {"network": "host", "timeoutMs": PROBE_TIMEOUT_MS}
    request = plan_run(config, asked, runtime=runtime, cmd=probe.command, files_dir=files, env=probe.env)
    try:
        result = run(backend, request)
    except Isol8Error as exc:
        return Check(probe.label, False, str(exc), required=False)
    lines = (result.stdout + result.stderr).strip().splitlines()
    hint = "set packages.pipIndexUrl / npmRegistry (a mirror) or packages.caBundle (a TLS proxy)"
    return Check(probe.label, result.exit_code == 0, f"`{probe.command}`: {lines[0] if lines else ''}", hint, False)
