"""Package ecosystems as plugins, one module each (as pre-commit's languages); the Spec they share."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from isol8.errors import UsageError
from isol8.records import NamedTuple
from isol8.runtimes import Runtime

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Protocol

    from isol8.ecosystems import apt, deno, npm, pip

    class Registry(Protocol):
        """Where installers fetch from (isol8.config.PackageSettings); None: their own default."""

        @property
        def pip_index_url(self) -> str | None: ...

        @property
        def npm_registry(self) -> str | None: ...

    class Ecosystem(Protocol):
        """What each module of isol8.ecosystems provides: the module is the plugin."""

        @property
        def RUN_TIME_REFUSAL(self) -> str | None:
            """Why `run --install` cannot work; None: it can, by a cached image built with install_lines."""
            ...

        def parse(self, spec: str) -> Spec:
            """One stripped spec, neither empty nor an option: validated and normalised."""
            ...

        def split(self, value: str) -> list[str]:
            """The non-blank specs of one comma-separated value."""
            ...

        def matches(self, constraint: str, version: str) -> bool:
            """Does a known installed version meet a non-empty constraint?"""
            ...

        def read_requirements(self, runtime: Runtime, path: str, text: str) -> tuple[Spec, ...]:
            """The specs of a requirements file's text; a UsageError where the ecosystem has none."""
            ...

        def context_files(self, specs: Sequence[Spec], inherited: Sequence[Spec], registry: Registry) -> dict[str, str]:
            """Name -> text of the files the install reads, for the build context's isol8-build/ (CONTEXT_DIR).

            `specs` are to be installed into an image that already has `inherited`.
            """
            ...

        def install_lines(self, runtime: Runtime, registry: Registry, ca: bool) -> list[str]:
            """The Dockerfile lines that install the packages; `ca`: CONTEXT_DIR/ca.pem is the CA bundle.

            User values, registry URLs included, reach the install only through context files, never these lines.
            """
            ...

        def runtime_installer(self, runtime: Runtime, registry: Registry, ca: bool) -> Installer:
            """How packages are installed into a sandbox at run time (isol8.core.installs); `ca` as for install_lines.

            Only called where RUN_TIME_REFUSAL is None; the command reads the specs from context_files only."""
            ...

        def version_query(self, runtime: Runtime, names: Sequence[str]) -> list[str]:
            """The command that prints {name: installed version or null} for the names, as one JSON line."""
            ...

        def registry_probe(self, runtime: Runtime, registry: Registry, ca: str | None) -> Probe | None:
            """A shell command that reaches the ecosystem's registry from runtime's image (on the host's
            network), and the variables that aim it there and make it trust the CA file `ca`; None: none."""
            ...

    _CHECKED: tuple[Ecosystem, ...] = (apt, deno, npm, pip)  # mypy holds each module to the protocol

PLUGINS = ("apt", "deno", "npm", "pip")


class Probe(NamedTuple):
    label: str  # what it reaches: "package index"
    command: str  # fixed text: user values reach it only through env
    env: dict[str, str]


class Installer(NamedTuple):
    """A run-time install: `command` (fixed text, run in /sandbox with CONTEXT_DIR holding the
    context files) installs into /sandbox/`directory`, which the program finds with `env` added."""

    directory: str
    command: str
    env: Mapping[str, str] = MappingProxyType({})


CONTEXT_DIR = "/tmp/isol8-build"  # where a custom image's build copies the context's isol8-build/
PREFIX = "/opt/isol8"  # where packages without a place of their own are installed in an image


@dataclass(frozen=True, order=True)
class Spec:
    """One requested package: `name` is the ecosystem's normalised name, `text` the normalised spec."""

    name: str
    text: str
    constraint: str = ""  # a PEP 440 specifier set or an npm range; "" means any version


def of(runtime: Runtime) -> Ecosystem:
    """The plugin module that runtime.ecosystem names, imported on first use."""
    if runtime.ecosystem not in PLUGINS:
        raise UsageError(f"runtime {runtime.name!r} names no known package ecosystem: {runtime.ecosystem!r}")
    import importlib

    plugin: Ecosystem = importlib.import_module(f"{__name__}.{runtime.ecosystem}")
    return plugin


def refuse(spec: str, why: str) -> UsageError:
    return UsageError(f"refusing package spec {spec!r}: {why}")


_SCREEN = re.compile(r"(?!-)[A-Za-z0-9@:/._\-\[\],<>=!~*+^|]+")


def screen(values: Iterable[str]) -> None:
    """A cheap first check (no imports) that refuses options, shell syntax and whitespace in specs."""
    for value in values:
        for part in value.split(","):
            if part and not _SCREEN.fullmatch(part):
                raise refuse(part, "only names, versions and extras are allowed (no options, spaces or shell syntax)")


def parse_spec(runtime: Runtime, raw: str) -> Spec:
    """Validate and normalise one spec; anything that could be an option or shell syntax is refused."""
    spec = raw.strip()
    if not spec:
        raise refuse(raw, "empty")
    if spec.startswith("-"):
        raise refuse(raw, "looks like an option")
    return of(runtime).parse(spec)


def parse_specs(runtime: Runtime, values: Iterable[str]) -> tuple[Spec, ...]:
    """Repeated and comma-separated values; normalised, de-duplicated, sorted."""
    plugin = of(runtime)
    specs: dict[str, Spec] = {}
    for value in values:
        for part in plugin.split(value):
            spec = parse_spec(runtime, part)
            specs[spec.text] = spec
    return tuple(sorted(specs.values()))


def split_commas(value: str) -> list[str]:
    return [p for p in value.split(",") if p.strip()]


def satisfies(runtime: Runtime, spec: Spec, version: str | None) -> bool:
    """Does an installed `version` of spec.name meet the spec's constraint? Unknown version: only if unconstrained."""
    if not spec.constraint:
        return True
    if not version:
        return False
    return of(runtime).matches(spec.constraint, version)


def read_requirements(runtime: Runtime, path: str) -> tuple[Spec, ...]:
    """A requirements file (requirements.txt for python, package.json for node and bun) as specs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--requirements: cannot read {path}: {exc.strerror}") from None
    return of(runtime).read_requirements(runtime, path, text)


def no_requirements(runtime: Runtime) -> UsageError:
    return UsageError(
        f"--requirements is for python (requirements.txt) and node/bun (package.json), not {runtime.name}"
    )
