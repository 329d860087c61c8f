"""Custom images a fleet of engines shares through a registry (the config's `registry`).

`isol8 build --push` and `prebuiltImages[].push` send an image there with its engine. Before
`run --install` builds, it looks there too: skopeo, run on isol8's host, lists the tags of
REPOSITORY/RUNTIME and reads each image's labels, which discovery ranks as it ranks local
images. The chosen image is pulled only when the engine lacks it, and only if it carries the
labels isol8 writes: an image anyone else put in the repository is never a candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from isol8 import labels as L
from isol8.config import RegistrySettings
from isol8.core.discovery import Candidate, Resolution, choose
from isol8.ecosystems import Spec
from isol8.errors import EngineError, RegistryUnreadable
from isol8.log import get_logger
from isol8.models import ImageInfo
from isol8.runtimes import Runtime

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Backend

log = get_logger(__name__)

MAX_TAGS = 200  # the tags of a repository that are read (one request each)


def repository_of(settings: RegistrySettings, runtime: str) -> str:
    assert settings.repository is not None
    return f"{settings.repository}/{runtime}"


def default_ref(settings: RegistrySettings, runtime: str, deps_hash: str) -> str:
    """Where an image goes when no reference is given: its definition's hash (which covers its
    base image) is its tag, so pushing an unchanged image again adds no tag."""
    return f"{repository_of(settings, runtime)}:{deps_hash[:24]}"


def carries_isol8s_labels(runtime: Runtime, labels: Mapping[str, str]) -> bool:
    """Labels as isol8 writes them, with isol8's own seccomp profile: a remote podman takes the
    profile from this label, so an image that carries another is never chosen from a registry."""
    from isol8.core.base_images import seccomp_label

    return (
        labels.get(L.RUNTIME) == runtime.name
        and labels.get(L.MANAGED) == "true"
        and labels.get(L.SECCOMP_PROFILE) == seccomp_label()
    )


def shared_candidates(backend: Backend, runtime: Runtime, settings: RegistrySettings) -> list[Candidate]:
    """The repository's images of this runtime that carry isol8's labels (RegistryUnreadable if
    it cannot be read). Each is one request: a repository of many tags costs its first lookups."""
    repo = repository_of(settings, runtime.name)
    found = []
    for info in backend.registry_images(repo, tls_verify=settings.tls_verify, limit=MAX_TAGS):
        if not carries_isol8s_labels(runtime, info.labels):
            continue
        candidate = Candidate.from_image(runtime, info)
        if candidate is not None:
            found.append(candidate)
    return found


def best_shared(
    backend: Backend, runtime: Runtime, specs: Sequence[Spec], settings: RegistrySettings, base: str
) -> Resolution | None:
    """The registry's best image for specs, ranked as local discovery ranks; None (a warning) when
    the registry cannot be read."""
    try:
        return choose(runtime, specs, shared_candidates(backend, runtime, settings), base)
    except RegistryUnreadable as exc:
        log.warning("%s", exc)
        return None


def pinned_ref(found: Resolution) -> str:
    """found's image by the digest skopeo read: whoever pulls it gets the very manifest whose
    labels were ranked, whatever the tag names by then."""
    repo = found.image.rpartition(":")[0]
    return f"{repo}@{found.image_id}" if found.image_id and found.image_id.startswith("sha256:") else found.image


def from_registry(
    backend: Backend,
    runtime: Runtime,
    specs: Sequence[Spec],
    local: Resolution,
    settings: RegistrySettings,
    say: Callable[[str], None],
) -> Resolution | None:
    """A shared image better than what the engine has (exact or superset, or a partial match that
    leaves less to install), pulled unless the engine has it (`say` tells of a pull); None when
    there is none, or it cannot be had (a warning: then the caller builds, as without a registry)."""
    found = best_shared(backend, runtime, specs, settings, local.image)
    if found is None:
        return None
    better = found.match in ("exact", "superset") or (
        found.match == "partial" and (local.match != "partial" or len(found.install) < len(local.install))
    )
    if not better:
        return None
    pinned = pinned_ref(found)
    present = backend.image(pinned)
    if present is None:
        say(f"pulling {found.image} ({found.reason})")
        try:
            backend.pull(pinned, tls_verify=settings.tls_verify)
        except EngineError as exc:
            log.warning("could not pull %s: %s", pinned, exc.message)
            return None
        present = backend.image(pinned)
    pulled = Candidate.from_image(runtime, present) if present is not None else None
    claimed = [s for s in specs if s not in found.install]
    if pulled is None or not carries_isol8s_labels(runtime, pulled.info.labels):
        _refuse(backend, found.image, present)
        return None
    if not all(pulled.covers(runtime, s) for s in claimed):
        _refuse(backend, found.image, present)
        return None
    if found.image not in pulled.info.tags:
        backend.tag(pulled.info.id, found.image)  # named as in the registry, for `isol8 images`
    return Resolution(runtime, found.image, found.match, found.install, found.reason, found.has_setup, pulled.info.id)


def _refuse(backend: Backend, ref: str, present: ImageInfo | None) -> None:
    """A pulled image that is not what the registry described is removed: left in the engine,
    local discovery could choose it later."""
    log.warning("%s is not what the registry described: removed, not used", ref)
    if present is not None:
        backend.remove_images([present.id])
