"""Packages for `isol8 run --install`, `build`, `setup` and `serve`: the config's settings and the CLI's streams."""

from __future__ import annotations

from isol8 import labels as L
from isol8.core.runner import RunRequest
from isol8.errors import EngineError, UsageError
from isol8.frontends.cli.app import App
from isol8.frontends.cli.inputs import check_tag
from isol8.reference import names_registry


def prepare_packages(app: App, request: RunRequest, install: list[str], *, remembered: bool = True) -> RunRequest:
    """--install: isol8.core.provision.provide with the config's settings and the CLI's streams."""
    from isol8.core.provision import provide

    return provide(
        app.backend,
        request,
        install,
        base_images=app.config.base_images,
        registry=app.packages(),
        debug=app.progress if app.debug else None,
        notice=app.progress if app.stderr.isatty() else (lambda line: None),
        on_failure=lambda output: app.progress("\n".join(output.splitlines()[-25:]).replace("\n", "\nisol8: ")),
        remembered=remembered,
        strategy=app.args.install_strategy or app.packages().strategy,
        shared=app.config.registry,
    )


def build_prebuilt_images(
    app: App,
    base_images: dict[str, str],
    *,
    only: list[str] | None = None,
    force: bool = False,
    push_must_work: bool = True,
) -> None:
    """The config's prebuiltImages, content-addressed: an unchanged entry is skipped, a changed one
    rebuilt; pushed where they ask to be (a failed push only warns unless push_must_work)."""
    from isol8 import runtimes
    from isol8.core.custom_images import ImageDefinition, build_image
    from isol8.ecosystems import parse_specs

    registry = app.packages()
    for entry in app.config.prebuilt_images:
        if only is not None and entry.runtime not in only:
            continue
        check_tag(entry.tag, "prebuiltImages[].tag")
        if entry.push:
            check_push(app, entry.push, "prebuiltImages[].push")
        runtime = runtimes.get(entry.runtime)
        defn = ImageDefinition(runtime, parse_specs(runtime, entry.install_packages), entry.setup_script)
        outcome = build_image(
            app.backend,
            defn,
            entry.tag,
            registry=registry,
            base_images=base_images,
            force=force,
            progress=app.progress,
        )
        app.say(f"{entry.tag}: {'built' if outcome.built else 'up to date'} ({outcome.image_id[:12]})")
        if entry.push:
            try:
                push_image(app, runtime.name, outcome.image_id, entry.push, "prebuiltImages[].push")
            except EngineError as exc:
                if push_must_work:
                    raise
                app.progress(f"warning: {entry.tag} was not pushed: {exc.message}")


def check_push(app: App, target: str | bool, option: str = "--push") -> None:
    """Refuse, before anything is built, a push that cannot happen (UsageError)."""
    if isinstance(target, str) and target:
        check_tag(target, option)
        if not names_registry(target):
            raise UsageError(f"{option}: {target!r} names no registry host: give HOST[:PORT]/NAME[:TAG]")
    elif target is not False and not app.config.registry.repository:
        raise UsageError(f"{option} without a reference needs the config's registry.repository")


def push_image(app: App, runtime: str, image_id: str, target: str | bool, option: str = "--push") -> str:
    """Send a custom image to a registry: to target, or (True, or --push without a value) to the
    config's registry.repository, tagged with its definition's hash. The reference pushed."""
    check_push(app, target, option)
    settings = app.config.registry
    if isinstance(target, str) and target:
        ref = target
    else:
        from isol8.core.shared_images import default_ref

        info = app.backend.image(image_id)
        ref = default_ref(settings, runtime, (info.labels if info else {}).get(L.DEPS_HASH) or image_id[-24:])
    app.backend.tag(image_id, ref)
    app.backend.push(ref, tls_verify=settings.tls_verify)
    app.say(f"  pushed: {ref}")
    return ref
