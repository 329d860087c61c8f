"""Packages for a run: resolve them to an image that has them, building (and caching) one when none does."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from isol8 import ecosystems
from isol8 import labels as L
from isol8.core.caches import ResolutionCache
from isol8.core.runner import RunRequest
from isol8.ecosystems import Spec, parse_specs, screen
from isol8.errors import BuildFailed, ImageMissing, RunFailed, UsageError
from isol8.runtimes import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.backends.base import Backend
    from isol8.config import PackageSettings, RegistrySettings
    from isol8.core.discovery import Resolution
    from isol8.core.installs import PackageTree


def check_install(runtime: Runtime, install: Sequence[str]) -> None:
    """Refuse --install values before any engine is touched (usage errors, exit 2); the full
    per-ecosystem parse follows in provide() unless this exact set was resolved before."""
    refusal = ecosystems.of(runtime).RUN_TIME_REFUSAL
    if refusal:
        raise UsageError(refusal)
    screen(install)


def provide(
    backend: Backend,
    request: RunRequest,
    install: Sequence[str],
    *,
    base_images: Mapping[str, str],
    registry: PackageSettings,
    debug: Callable[[str], None] | None = None,
    notice: Callable[[str], None] = lambda line: None,
    on_failure: Callable[[str], None] = lambda output: None,
    remembered: bool = True,
    strategy: str = "image",
    shared: RegistrySettings | None = None,
) -> RunRequest:
    """The request with `image` set to one that has the packages (strategy "image"), or with the
    packages installed for it at run time (strategy "runtime": see install_at_run_time).

    A package set resolved before reuses that answer without any engine call (the answers are
    dropped whenever isol8 builds or removes images). Before it builds, the `shared` registry's
    images are looked at (isol8.core.shared_images). Install output goes to `debug` when given,
    else to `on_failure` when the install fails.
    """
    runtime = request.runtime
    check_install(runtime, install)
    if strategy == "runtime":
        return install_at_run_time(backend, request, install, registry, Output(debug, notice, on_failure))
    if not backend.builds_images:
        return _without_builds(backend, request, install, registry, shared, Output(debug, notice, on_failure))
    base = backend.local_image(request.runtime.image)
    answers = ResolutionCache(backend.cache_key)
    raw_key = answers.key(runtime.name, base, ["raw", *install])  # these exact values, resolved before
    if request.image is None and remembered:
        image = answers.get(raw_key)
        if image is not None:
            if debug:
                debug(f"resolve: {image} (remembered for this package set); to install: nothing")
            return request._replace(image=image)
    from isol8.core.discovery import resolve

    specs = parse_specs(runtime, install)
    answer_key = answers.key(runtime.name, base, [s.text for s in specs])
    image = answers.get(answer_key) if request.image is None and remembered else None
    if image is not None:
        answers.put(raw_key, image)
        return request._replace(image=image)
    resolution = resolve(backend, runtime, specs, base=base, image=request.image)
    if resolution.install and request.image is None and shared is not None and shared.repository:
        from isol8.core.shared_images import from_registry

        resolution = from_registry(backend, runtime, specs, resolution, shared, debug or notice) or resolution
    if debug:
        left = ", ".join(s.text for s in resolution.install) or "nothing"
        debug(f"resolve: {resolution.match} {resolution.image} ({resolution.reason}); to install: {left}")
    image = resolution.run_ref
    if resolution.install:
        image = _install(backend, resolution, specs, base, Output(debug, notice, on_failure), registry, base_images)
    if request.image is None:
        answers.put(answer_key, image)
        answers.put(raw_key, image)
    return request._replace(image=image)


def _without_builds(
    backend: Backend,
    request: RunRequest,
    install: Sequence[str],
    registry: PackageSettings,
    shared: RegistrySettings | None,
    out: Output,
) -> RunRequest:
    """A backend that builds nothing (a cluster): the registry's best image by its labels, pinned
    by digest, and what it lacks installed at run time (as is everything, with no registry)."""
    from isol8.core.shared_images import best_shared, pinned_ref

    found = None
    if request.image is None and shared is not None and shared.repository:
        base = backend.local_image(request.runtime.image)
        found = best_shared(backend, request.runtime, parse_specs(request.runtime, install), shared, base)
    if found is None or found.match == "base":
        return install_at_run_time(backend, request, install, registry, out)
    out.notice(f"using {found.image} ({found.reason})")
    request = request._replace(image=pinned_ref(found))
    if not found.install:
        return request
    return install_at_run_time(backend, request, [s.text for s in found.install], registry, out)


def install_at_run_time(
    backend: Backend, request: RunRequest, install: Sequence[str], registry: PackageSettings, out: Output
) -> RunRequest:
    """The request with the packages installed for it by an installer of its image (isol8.core.installs):
    no image is built, and the sandbox gets no network."""
    from isol8.core.installs import install_tree

    specs = parse_specs(request.runtime, install)
    image = request.image or backend.local_image(request.runtime.image)
    out.notice(f"installing {', '.join(s.text for s in specs)} into the sandbox")
    try:
        tree = install_tree(
            backend,
            request.runtime,
            image,
            specs,
            policy=request.policy,
            registry=registry,
            timeout_s=registry.install_timeout_s,
            progress=out.debug,
            labels=request.labels,
        )
    except RunFailed as exc:
        if not out.debug and not isinstance(exc, ImageMissing):
            out.on_failure(exc.stderr)
        raise
    return with_packages(request, tree)


def with_packages(request: RunRequest, tree: PackageTree) -> RunRequest:
    """request with tree unpacked into its /sandbox first, and the variables that make its program find it."""
    return request._replace(packages=tree.tar, env={**tree.env, **request.env})


@dataclass(frozen=True)
class Output:
    """Where provide() reports: every build line (debug), a one-line notice, the installer's words on failure."""

    debug: Callable[[str], None] | None
    notice: Callable[[str], None]
    on_failure: Callable[[str], None]


def _install(
    backend: Backend,
    resolution: Resolution,
    specs: Sequence[Spec],
    base: str,
    out: Output,
    registry: PackageSettings,
    base_images: Mapping[str, str],
) -> str:
    """Build (once: the image is cached and labelled) what resolution left to install; the new image's ID."""
    from isol8.core.custom_images import ImageDefinition, build_image
    from isol8.core.discovery import Candidate

    runtime = resolution.runtime
    inherited: tuple[Spec, ...] = ()
    if resolution.match in ("partial", "image"):
        info = backend.image(resolution.run_ref)
        found = Candidate.from_image(runtime, info) if info else None
        inherited = tuple(found.packages.values()) if found else ()
    name = hashlib.sha256("\0".join([resolution.run_ref, *(s.text for s in specs)]).encode()).hexdigest()[:16]
    defn = ImageDefinition(runtime, resolution.install, None, from_image=resolution.run_ref, inherited=inherited)
    if resolution.match == "base" and backend.image(base) is None:
        defn = dataclasses.replace(defn, from_image=None)  # build_image builds the base first
    out.notice(f"installing {', '.join(s.text for s in resolution.install)} (once: the result is cached)")
    try:
        outcome = build_image(
            backend,
            defn,
            f"isol8-auto-{runtime.name}:{name}",
            registry=registry,
            base_images=base_images,
            extra_labels={L.AUTO: "true"},
            progress=out.debug or (lambda line: None),
        )
    except BuildFailed as exc:
        if not out.debug:  # the installer's own words, which debug already showed line by line
            out.on_failure(exc.stderr)
        raise RunFailed(
            exc.argv, 125, exc.stdout, exc.stderr, message=f"package install failed: {exc.message}"
        ) from None
    return outcome.image_id
