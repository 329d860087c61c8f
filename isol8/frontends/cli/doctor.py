"""`isol8 doctor`: what works and what does not, one line per check, as it finds out."""

from __future__ import annotations

import json
from collections.abc import Iterator

from isol8.config import Config
from isol8.core import doctor
from isol8.core.doctor import Check
from isol8.errors import ConfigError, Isol8Error
from isol8.frontends.cli.app import App
from isol8.status import ExitStatus


def _config_checks(app: App) -> Iterator[Check | Config]:
    """The config files' checks, then the config to go on with (the defaults when it is invalid)."""
    try:
        config = app.config
    except ConfigError as exc:
        yield Check("config", False, str(exc), "fix it; `isol8 config --show-origin` shows what is read")
        yield Config()
        return
    for path in config.sources:
        yield Check("config", True, f"{path}: valid")
    if not config.sources:
        yield Check("config", True, "no config file: the built-in defaults")
    for reason in config.ignored:
        yield Check("config", False, f"ignored {reason}", required=False)
    yield config


def checks(app: App) -> Iterator[Check]:
    config = Config()
    for item in _config_checks(app):
        if isinstance(item, Config):
            config = item
        else:
            yield item
    yield doctor.ca_check(config)
    try:
        backend = app.open_backend(config)
    except Isol8Error as exc:
        yield Check("engine", False, str(exc), exc.hint or "install docker or podman")
        return
    found, info = doctor.engine_checks(backend)
    yield from found
    if info is None:
        return
    if backend.builds_images:
        yield from doctor.image_checks(backend, config.base_images)
    yield doctor.sandbox_check(backend, config)
    if backend.builds_images:
        yield doctor.disk_check(info, backend.endpoint is not None)
    if app.args.network:
        yield from doctor.network_checks(backend, config)


def _marks(app: App) -> tuple[str, str]:
    try:
        "✓✗".encode(getattr(app.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "ok", "FAIL"
    return "✓", "✗"


def cmd_doctor(app: App) -> int:
    done: list[Check] = []
    good, bad = _marks(app)
    for check in checks(app):
        done.append(check)
        if app.args.json:
            continue
        optional = "" if check.ok or check.required else " (optional)"
        app.say(f"{good if check.ok else bad} {check.name}: {check.detail}{optional}")
        if not check.ok and check.hint:
            app.say(f"    hint: {check.hint}")
    failed = [c for c in done if c.required and not c.ok]
    if app.args.json:
        app.say(json.dumps({"ok": not failed, "checks": [c.to_json() for c in done]}, indent=2))
    elif failed:
        app.say(f"isol8 run will not work: {len(failed)} problem(s) above")
    else:
        app.say("isol8 run works")
    return ExitStatus.ERROR if failed else ExitStatus.OK
