"""One handler per sub-command: argparse Namespace -> library calls -> the injected streams."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TextIO

from isol8 import runtimes
from isol8.config import Config, load_config
from isol8.engine import Engine, select_dialect
from isol8.errors import UsageError
from isol8.status import ExitStatus


@dataclass
class App:
    args: argparse.Namespace
    stdout: TextIO
    stderr: TextIO
    debug: bool = False
    _cache: dict[str, object] = field(default_factory=dict)

    @cached_property
    def config(self) -> Config:
        return load_config(self.args.config)

    @cached_property
    def engine(self) -> Engine:
        import os

        return Engine(select_dialect(self.args.engine or os.environ.get("ISOL8_ENGINE") or self.config.engine))

    def progress(self, line: str) -> None:
        self.stderr.write(f"isol8: {line}\n")
        self.stderr.flush()

    def say(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()


def parse_assignments(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise UsageError(f"{what}: expected KEY=VALUE, got {value!r}")
        out[key] = rest
    return out


def cmd_setup(app: App) -> int:
    from isol8.images import ensure_base_images

    base_images = dict(app.config.base_images)
    overrides = parse_assignments(app.args.base_image, "--base-image")
    for runtime in overrides:
        runtimes.get(runtime)
    base_images.update(overrides)
    chosen = list(dict.fromkeys(app.args.runtime or runtimes.NAMES))
    app.engine.version()
    for outcome in ensure_base_images(
        app.engine, chosen, base_images=base_images, force=app.args.force, progress=app.progress
    ):
        state = "built" if outcome.built else "up to date"
        app.say(f"{outcome.image}: {state} ({outcome.image_id[:12]})")
    return ExitStatus.OK


def cmd_config(app: App) -> int:
    config = app.config
    source = str(config.source) if config.source else None
    if app.args.json:
        app.say(json.dumps({"source": source, "config": config.data}, indent=2))
        return ExitStatus.OK
    app.say(f"source: {source or 'built-in defaults (no config file found)'}")
    import yaml

    app.stdout.write(yaml.safe_dump(dict(config.data), sort_keys=False, default_flow_style=False))
    return ExitStatus.OK
