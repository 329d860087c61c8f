"""Custom images: runtime base + packages (+ setup script), labelled, content-addressed, resolved versions recorded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from isol8 import ecosystems
from isol8 import labels as L
from isol8.config import PackageSettings
from isol8.core.base_images import ensure_base_image
from isol8.core.sandbox import SandboxPolicy
from isol8.ecosystems import CONTEXT_DIR, Spec
from isol8.errors import BuildFailed, EngineError, UsageError
from isol8.log import get_logger
from isol8.runtimes import RUNTIMES, Runtime
from isol8.units import MIB

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Backend

log = get_logger(__name__)


@dataclass(frozen=True)
class ImageDefinition:
    runtime: Runtime
    specs: tuple[Spec, ...] = ()
    setup: str | None = None
    from_image: str | None = None  # default: isol8:<runtime>
    inherited: tuple[Spec, ...] = field(default=())  # packages the from_image already has

    def dependencies_label(self) -> str:
        return ",".join(sorted({s.text for s in (*self.inherited, *self.specs)}))


def read_setup(values: Sequence[str]) -> str | None:
    """--setup values that name a file are replaced by its contents; joined by newlines."""
    scripts = []
    for value in values:
        try:
            is_file = os.path.isfile(value)
        except (OSError, ValueError):  # a long one-line script is no file name
            is_file = False
        scripts.append(Path(value).read_text(encoding="utf-8") if is_file else value)
    return "\n".join(scripts) if scripts else None


def deps_hash(defn: ImageDefinition, base_id: str) -> str:
    """Length-framed, so ("ab", "c") and ("a", "bc") can never collide."""
    digest = hashlib.sha256()
    specs = (s.text for s in defn.specs)
    for part in ("isol8-deps-v1", defn.runtime.name, base_id, *specs, "\0setup", defn.setup or ""):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _write_context(directory: Path, defn: ImageDefinition, base: str, registry: PackageSettings) -> None:
    files = directory / "isol8-build"
    files.mkdir()
    ca = registry.ca_file() if defn.specs else None  # only installs fetch: a setup-only image gets none
    if ca is not None:
        shutil.copyfile(ca, files / "ca.pem")
    plugin = ecosystems.of(defn.runtime)
    for name, text in plugin.context_files(defn.specs, defn.inherited, registry).items():
        (files / name).write_text(text)
    if defn.setup is not None:
        (files / "setup.sh").write_text(defn.setup + "\n")
    lines = [f"FROM {base}", "USER root", f"COPY isol8-build {CONTEXT_DIR}"]
    if defn.specs:
        lines += plugin.install_lines(defn.runtime, registry, ca is not None)
    if defn.setup is not None:
        lines.append(f"RUN cd /tmp && /bin/bash {CONTEXT_DIR}/setup.sh")
    lines += [f"RUN rm -rf {CONTEXT_DIR}", "USER 1100:1100", "WORKDIR /sandbox"]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")


def installed_versions(backend: Backend, image: str, runtime: Runtime, specs: Sequence[Spec]) -> dict[str, str | None]:
    """Read the versions of the given packages from inside the image (sandboxed, no network)."""
    if not specs:
        return {}
    command = ecosystems.of(runtime).version_query(runtime, [s.name for s in specs])
    done = backend.probe(image, command, SandboxPolicy(memory=256 * MIB), timeout=120)
    if done.returncode != 0:
        raise BuildFailed(
            command, done.returncode, done.stdout, done.stderr, message="could not read installed versions"
        )
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BuildFailed(command, 0, done.stdout, done.stderr, message="unreadable version report") from None
    return {str(k): (str(v) if v else None) for k, v in data.items()}


@dataclass(frozen=True)
class BuildOutcome:
    tag: str
    built: bool
    image_id: str
    resolved: str


def build_image(
    backend: Backend,
    defn: ImageDefinition,
    tag: str,
    *,
    registry: PackageSettings,
    base_images: Mapping[str, str],
    force: bool = False,
    extra_labels: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> BuildOutcome:
    """Build tag from defn unless it already exists with the same deps hash (or force)."""
    if not defn.specs and defn.setup is None:
        raise UsageError("nothing to build: give at least one package (--install/--requirements) or --setup")
    runtime = defn.runtime
    if RUNTIMES.get(runtime.name) != runtime:
        raise UsageError(f"unknown runtime {runtime.name!r}")
    base, base_id = _base_of(backend, defn, base_images, progress)
    wanted = deps_hash(defn, base_id)
    current = backend.image(tag)
    if current is not None and not force and current.labels.get(L.DEPS_HASH) == wanted:
        return BuildOutcome(tag, False, current.id, current.labels.get(L.RESOLVED, ""))
    labels = {
        L.MANAGED: "true",
        L.RUNTIME: runtime.name,
        L.DEPENDENCIES: defn.dependencies_label(),
        L.DEPS_HASH: wanted,
    }
    if defn.setup is not None:
        labels[L.SETUP] = defn.setup
    labels.update(extra_labels or {})
    with tempfile.TemporaryDirectory(prefix="isol8-image-") as tmp:
        _write_context(Path(tmp), defn, backend.local_image(base), registry)
        progress(f"building {tag} ({runtime.name}: {defn.dependencies_label() or 'setup only'})")
        first = backend.build(tag=tag, context=tmp, labels=labels, on_output=lambda line: progress(f"  {line}"))
    resolved = _resolved(backend, first, defn, tag)
    with tempfile.TemporaryDirectory(prefix="isol8-image-") as tmp:
        Path(tmp, "Dockerfile").write_text(f"FROM {first}\n")
        final = backend.build(tag=tag, context=tmp, labels={**labels, L.RESOLVED: resolved})
    if current is not None and current.id not in (first, final):
        _remove_if_unused(backend, current.id)
    from isol8.core.caches import ResolutionCache

    ResolutionCache(backend.cache_key).clear()  # a new image may now be the better match for a package set
    return BuildOutcome(tag, True, final, resolved)


def _base_of(
    backend: Backend, defn: ImageDefinition, base_images: Mapping[str, str], progress: Callable[[str], None]
) -> tuple[str, str]:
    """(name, ID) of the image defn builds on: its from_image, else the runtime's base (built if needed)."""
    if defn.from_image is None:
        runtime = defn.runtime.name
        outcome = ensure_base_image(backend, runtime, base_image=base_images.get(runtime), progress=progress)
        return outcome.image, outcome.image_id
    info = backend.image(defn.from_image)
    if info is None:
        raise UsageError(f"image not found: {defn.from_image}")
    return defn.from_image, info.id


def _resolved(backend: Backend, image_id: str, defn: ImageDefinition, tag: str) -> str:
    """The resolved label: name==version of every package, read from the built image; all must be there."""
    versions = installed_versions(backend, image_id, defn.runtime, sorted({*defn.inherited, *defn.specs}))
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        raise BuildFailed(["build", tag], 1, message=f"installed, but not found in the image: {missing}")
    return ",".join(f"{name}=={version}" for name, version in sorted(versions.items()))


def _remove_if_unused(backend: Backend, image_id: str) -> None:
    try:
        for failure in backend.remove_images([image_id]):
            log.debug("kept replaced image %s: %s", image_id, failure.message)
    except EngineError as exc:
        log.debug("kept replaced image %s: %s", image_id, exc)
