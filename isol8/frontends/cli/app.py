"""What every command handler gets: the parsed flags, the injected streams, the config and the backend."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from functools import cached_property

from isol8.config import Config, PackageSettings, load_config

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import TextIO

    from isol8.backends.base import Backend


class App:
    def __init__(
        self, args: argparse.Namespace, stdin: TextIO | None, stdout: TextIO, stderr: TextIO, debug: bool = False
    ) -> None:
        self.args = args
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.debug = debug

    @cached_property
    def config(self) -> Config:
        config = load_config(self.args.config, user=not self.args.no_user_config)
        for reason in config.ignored:
            self.progress(f"warning: ignored config file {reason}")
        return config

    @cached_property
    def backend(self) -> Backend:
        return self.open_backend(self.config)

    def open_backend(self, config: Config) -> Backend:
        """The backend the command line and config choose, opened: nothing is asked of it yet."""
        import os

        from isol8.backends import open_backend

        settings = config.backend
        kind = getattr(self.args, "backend", None) or os.environ.get("ISOL8_BACKEND") or settings.kind
        kube = {**settings.kube, "registry": config.registry.repository}
        return open_backend(self.args.engine or settings.engine, self.endpoint(config), kind=kind, kube=kube)

    def endpoint(self, config: Config) -> Mapping[str, str | None]:
        """The endpoint keys: the command line's if it gave any, else the config's `backend` section."""
        from isol8.frontends.cli.help import ENDPOINT_DESTS

        given = {key: getattr(self.args, dest, None) for dest, key in ENDPOINT_DESTS.items()}
        return given if any(given.values()) else config.backend.endpoint

    def packages(self) -> PackageSettings:
        return self.config.packages

    def piped_stdin(self) -> bool:
        """Standard input is there and not a terminal (a pipe, a file)."""
        return self.stdin is not None and not self.stdin.isatty()

    def progress(self, line: str) -> None:
        self.stderr.write(f"isol8: {line}\n")
        self.stderr.flush()

    def say(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()
