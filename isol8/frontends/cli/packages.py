"""Packages for `isol8 run --install`, `build`, `setup` and `serve`: the config's settings and the CLI's streams."""

from __future__ import annotations

from isol8.core.runner import RunRequest
from isol8.frontends.cli.app import App
from isol8.frontends.cli.inputs import check_tag


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
    )


def build_prebuilt_images(
    app: App, base_images: dict[str, str], *, only: list[str] | None = None, force: bool = False
) -> None:
    """The config's prebuiltImages, content-addressed: an unchanged entry is skipped, a changed one rebuilt."""
    from isol8 import runtimes
    from isol8.core.custom_images import ImageDefinition, build_image
    from isol8.ecosystems import parse_specs

    registry = app.packages()
    for entry in app.config.prebuilt_images:
        if only is not None and entry.runtime not in only:
            continue
        check_tag(entry.tag, "prebuiltImages[].tag")
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
