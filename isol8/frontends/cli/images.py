"""`isol8 setup`, `build`, `images` and `resolve`: the base images, custom images and which one a run would use."""

from __future__ import annotations

import json

from isol8 import labels as L
from isol8 import runtimes
from isol8.errors import UsageError
from isol8.frontends.cli.app import App
from isol8.frontends.cli.inputs import check_tag, parse_assignments
from isol8.frontends.cli.packages import build_prebuilt_images, check_push, push_image
from isol8.status import ExitStatus


def cmd_setup(app: App) -> int:
    from isol8.core.base_images import PROXY, ensure_base_image, proxy_base

    args = app.args
    base_images = dict(app.config.base_images)
    overrides = parse_assignments(args.base_image, "--base-image")
    for runtime in overrides:
        if runtime != PROXY:
            runtimes.get(runtime)
    base_images.update(overrides)
    chosen = list(dict.fromkeys(args.runtime or (*runtimes.NAMES, PROXY)))
    if args.push and not app.config.registry.repository:
        raise UsageError("setup --push needs the config's registry.repository")
    app.backend.version()
    for runtime in chosen:
        # a base image named on the command line is asked for now: not having it is a failure
        strict = args.strict or runtime in overrides
        outcome = ensure_base_image(
            app.backend,
            runtime,
            base_image=proxy_base(base_images) if runtime == PROXY else base_images.get(runtime),
            force=args.force,
            strict=strict,
            progress=app.progress,
        )
        if outcome.warning:
            app.progress(f"warning: {outcome.warning}")
        state = "built" if outcome.built else "kept (base not checked)" if outcome.warning else "up to date"
        app.say(f"{outcome.image}: {state} ({outcome.image_id[:12]})")
        if args.push:  # where a cluster's nodes pull it (backends/kubernetes): the proxy for filtered runs
            registry = app.config.registry
            ref = f"{registry.repository}/{outcome.image}"
            app.backend.tag(outcome.image_id, ref)
            app.backend.push(ref, tls_verify=registry.tls_verify)
            app.say(f"  pushed: {ref}")
    only = [name for name in chosen if name != PROXY] if app.args.runtime else None
    build_prebuilt_images(app, base_images, only=only, force=app.args.force)
    return ExitStatus.OK


def cmd_build(app: App) -> int:
    from isol8.core.custom_images import ImageDefinition, build_image, read_setup
    from isol8.ecosystems import parse_specs, read_requirements

    args = app.args
    check_tag(args.tag)
    runtime = runtimes.get(args.base)
    specs = parse_specs(runtime, args.install)
    if args.requirements:
        specs = tuple(sorted({*specs, *read_requirements(runtime, args.requirements)}))
    setup = read_setup(args.setup)
    if not specs and setup is None:
        raise UsageError("nothing to build: give at least one package (--install/--requirements) or --setup")
    if args.push is not None:
        check_push(app, args.push)
    app.backend.version()
    outcome = build_image(
        app.backend,
        ImageDefinition(runtime, specs, setup),
        args.tag,
        registry=app.packages(),
        base_images=app.config.base_images,
        force=args.force,
        progress=app.progress,
    )
    state = "built" if outcome.built else "up to date (same definition)"
    app.say(f"{args.tag}: {state} ({outcome.image_id[:12]})")
    if outcome.resolved:
        app.say(f"  installed: {outcome.resolved}")
    if args.push is not None:
        push_image(app, runtime.name, outcome.image_id, args.push)
    return ExitStatus.OK


def cmd_images(app: App) -> int:
    backend = app.backend
    wanted = {L.DEPS_HASH: None, **({L.RUNTIME: app.args.runtime} if app.args.runtime else {})}
    infos = sorted(backend.inspect_images(backend.list_images(wanted)), key=lambda i: (i.tags, i.id))
    if app.args.json:
        rows = [
            {
                "tag": (info.tags[0] if info.tags else info.id[:12]),
                "tags": list(info.tags),
                "id": info.id,
                "runtime": info.labels.get(L.RUNTIME, ""),
                "packages": [p for p in info.labels.get(L.DEPENDENCIES, "").split(",") if p],
                "resolved": [p for p in info.labels.get(L.RESOLVED, "").split(",") if p],
                "setup": (info.labels.get(L.SETUP) or "").split("\n", 1)[0] or None,
                "auto": info.labels.get(L.AUTO) == "true",
                "size": info.size,
                "created": info.created.isoformat() if info.created else None,
            }
            for info in infos
        ]
        app.say(json.dumps(rows, indent=2))
        return ExitStatus.OK
    if not infos:
        app.say("no custom images (isol8 build creates them)")
    for info in infos:
        packages = info.labels.get(L.RESOLVED) or info.labels.get(L.DEPENDENCIES) or "-"
        cached = "  (cached by run --install)" if info.labels.get(L.AUTO) == "true" else ""
        created = info.created.strftime("%Y-%m-%d %H:%M") if info.created else ""
        name = info.tags[0] if info.tags else info.id[:12]
        app.say(f"{name}  {info.labels.get(L.RUNTIME, '')}  {packages}  {info.size / 1e6:.0f} MB  {created}{cached}")
        setup = (info.labels.get(L.SETUP) or "").split("\n", 1)[0]
        if setup:
            app.say(f"    setup: {setup}")
    return ExitStatus.OK


def cmd_resolve(app: App) -> int:
    from isol8.core.discovery import resolve
    from isol8.ecosystems import parse_specs

    runtime = runtimes.get(app.args.runtime)
    specs = parse_specs(runtime, app.args.install)
    resolution = resolve(app.backend, runtime, specs, base=app.backend.local_image(runtime.image))
    if app.args.json:
        app.say(json.dumps(resolution.to_json()))
    else:
        app.say(f"{resolution.match}: {resolution.image}")
        app.say(f"  {resolution.reason}")
        if resolution.install:
            app.say(f"  to install at run time: {', '.join(s.text for s in resolution.install)}")
    return ExitStatus.OK
