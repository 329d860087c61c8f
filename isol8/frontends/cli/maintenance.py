"""`isol8 config` and `isol8 cleanup`: what is configured, and removing what isol8 left behind."""

from __future__ import annotations

import json
from collections.abc import Mapping

from isol8 import labels as L
from isol8.errors import Isol8Error
from isol8.frontends.cli.app import App
from isol8.status import ExitStatus


def cmd_config(app: App) -> int:
    from isol8.config.layers import leaves

    config = app.config
    endpoint = _endpoint(app)
    if app.args.json:
        origins = {path: origin for origin, path, _ in leaves(config.data, config.origins)}
        document = {
            "source": config.source,
            "sources": list(config.sources),
            "config": config.data,
            "origins": origins,
            "endpoint": endpoint,
        }
        app.say(json.dumps(document, indent=2))
        return ExitStatus.OK
    if app.args.show_origin:
        rows = leaves(config.data, config.origins)
        width = max(len(origin) for origin, _, _ in rows)
        for origin, path, value in rows:
            app.say(f"{origin:<{width}}  {path}: {json.dumps(value)}")
        return ExitStatus.OK
    for path in config.sources:
        app.say(f"source: {path}")
    if not config.sources:
        app.say("source: built-in defaults (no config file found)")
    where = endpoint["where"] or "the client's default endpoint"
    app.say(
        f"engine: none ({endpoint['error']})"
        if endpoint["engine"] is None
        else f"engine: {endpoint['engine']}, {where}"
    )
    import yaml

    app.stdout.write(yaml.safe_dump(dict(config.data), sort_keys=False, default_flow_style=False))
    return ExitStatus.OK


def _endpoint(app: App) -> dict[str, str | None]:
    """Which engine commands would use, and where it is (its client's options or environment;
    None: the client's default), as the config and the command line choose; nothing is asked of it."""
    try:  # opened, never asked anything (auto-detection only tries docker's socket)
        backend = app.open_backend(app.config)
    except Isol8Error as exc:
        return {"engine": None, "where": None, "error": str(exc)}
    return {"engine": backend.name, "where": backend.endpoint}


def _confirm(app: App, question: str) -> bool:
    """Asked only when standard input is a terminal (and not --force): a script is never held up."""
    if app.args.force or app.stdin is None or not app.stdin.isatty():
        return True
    app.stdout.write(f"{question} [y/N] ")
    app.stdout.flush()
    return app.stdin.readline().strip().lower() in ("y", "yes")


def _owner(labels: Mapping[str, str]) -> str:
    return f"pid {labels.get(L.RUN_PID, '?')} on {labels.get(L.RUN_HOST, '?')}"


def cmd_cleanup(app: App) -> int:
    from isol8.core.owners import cleanup_scope

    backend = app.backend
    removable = cleanup_scope(everyone=bool(app.args.all), stale_after_ms=app.args.stale_after)

    found = backend.inspect_containers(backend.list_containers({L.RUN_ID: None}))
    containers = [c for c in found if removable(c.labels)]
    in_use = [c for c in found if c not in containers]
    for c in containers:
        state = "running" if c.running else "stopped"
        app.say(f"container {c.name}  {state}  {c.image}  started by {_owner(c.labels)}")
    volume_labels = backend.volume_labels(backend.list_volumes({L.RUN_ID: None}))  # filtered runs' proxy sockets
    volumes = [name for name, labels in volume_labels.items() if removable(labels)]
    for name in volumes:
        app.say(f"volume {name}")
    if in_use:
        owners = sorted({_owner(c.labels) for c in in_use})
        app.progress(
            f"left {len(in_use)} container(s) whose isol8 process is still running ({', '.join(owners)}): "
            "--all removes them too, --stale-after those older than a duration"
        )
    images = []
    if app.args.images:
        for info in backend.inspect_images(backend.list_images({L.MANAGED: "true"})):
            base = L.BUILD_HASH in info.labels and L.DEPS_HASH not in info.labels
            if app.args.keep_base and base and info.tags:  # an untagged one is a leftover layer: removed
                continue
            images.append(info)
            app.say(f"image {', '.join(info.tags) or info.id[:12]}  {info.labels.get(L.RUNTIME, '')}")
    if not containers and not volumes and not images:
        app.say("nothing to remove")
        return ExitStatus.OK
    what = f"{len(containers)} container(s)" + (f", {len(volumes)} volume(s)" if volumes else "")
    what += f" and {len(images)} image(s)" if app.args.images else ""
    if app.args.dry_run:
        app.say(f"{what} would be removed")
        return ExitStatus.OK
    if not _confirm(app, f"Remove {what}?"):
        app.say("nothing removed")
        return ExitStatus.OK
    backend.remove_containers([c.id for c in containers])
    backend.remove_volumes(volumes)
    if images:
        from isol8.core.caches import ResolutionCache

        ResolutionCache(backend.cache_key).clear()
    kept = 0
    for info in images:
        # by name, never forced: an image a container (running or not) still uses stays
        failures = backend.remove_images(list(info.tags) or [info.id])
        for failure in failures:
            kept += 1
            app.progress(f"kept {', '.join(info.tags) or info.id[:12]}: {failure.message}")
    removed = f"removed {len(containers)} container(s)" + (f", {len(volumes)} volume(s)" if volumes else "")
    app.say(removed + (f" and {len(images) - kept} image(s)" if images else ""))
    return ExitStatus.OK
