"""npm packages for node and bun: names with semver ranges, package.json, and npm install or bun install."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from isol8.ecosystems import CONTEXT_DIR, PREFIX, Installer, Probe, Spec, parse_specs, refuse, split_commas
from isol8.errors import UsageError
from isol8.runtimes import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.ecosystems import Registry

RUN_TIME_REFUSAL = None
NO_GIT = "npm_config_git=/nonexistent/git"  # the git that npm (and bun) would clone git dependencies with
STAGING = "/sandbox/.isol8-install"  # a run-time install's package.json and lock file, left in the installer

NAME = r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
RANGE = r"[A-Za-z0-9.^~<>=*+_-]+(?:\|\|[A-Za-z0-9.^~<>=*+_-]+)*"
_SPEC = re.compile(rf"(?P<name>{NAME})(?:@(?P<range>{RANGE}))?")
_DIST_TAGS = ("latest", "next")  # they name no range: any installed version will do


@dataclass(frozen=True)
class _Tools:
    install: str  # run in PREFIX, next to package.json
    js: str  # runs the version query


_NPM = _Tools("npm install --no-audit --no-fund --omit=dev --loglevel=error", "node")
_TOOLS = {"bun": _Tools("bun install --production", "bun")}  # any other runtime has npm's and node


def _tools(runtime: Runtime) -> _Tools:
    return _TOOLS.get(runtime.name, _NPM)


def parse(spec: str) -> Spec:
    return parse_npm(spec, spec)


def parse_npm(spec: str, shown: str) -> Spec:
    """`shown` is the spec as the user wrote it, for messages (deno's `npm:` prefix included)."""
    match = _SPEC.fullmatch(spec)
    if not match:
        raise refuse(shown, "expected NAME, @scope/NAME, NAME@range (lowercase npm names)")
    constraint = match.group("range") or ""
    if constraint:
        import nodesemver

        if constraint not in _DIST_TAGS and nodesemver.valid_range(constraint, loose=False) is None:
            raise refuse(shown, f"{constraint!r} is not a version range")
    if constraint in _DIST_TAGS:
        return Spec(match.group("name"), match.group("name"), "")
    return Spec(match.group("name"), spec, constraint)


split = split_commas


def matches(constraint: str, version: str) -> bool:
    import nodesemver

    try:
        return bool(nodesemver.satisfies(version, constraint, loose=False))
    except Exception:
        return False


def read_requirements(runtime: Runtime, path: str, text: str) -> tuple[Spec, ...]:
    """package.json: its `dependencies` (devDependencies are not for the sandbox)."""
    try:
        deps = json.loads(text).get("dependencies") or {}
    except (ValueError, AttributeError):
        deps = None
    if not isinstance(deps, dict):
        raise UsageError(f"--requirements: {path} is not a package.json with a dependencies object")
    return parse_specs(runtime, [f"{name}@{rng}" if rng not in ("", "*") else name for name, rng in deps.items()])


def context_files(specs: Sequence[Spec], inherited: Sequence[Spec], registry: Registry) -> dict[str, str]:
    deps = {s.name: s.constraint or "*" for s in sorted({*inherited, *specs})}
    files = {"package.json": json.dumps({"name": "isol8-image", "private": True, "dependencies": deps})}
    if registry.npm_registry:
        files["npmrc"] = npmrc(registry.npm_registry)
    return files


def npmrc(registry: str) -> str:
    return f"registry={registry}\n"


def install_lines(runtime: Runtime, registry: Registry, ca: bool) -> list[str]:
    env = f"NODE_EXTRA_CA_CERTS={CONTEXT_DIR}/ca.pem " if ca else ""
    install = env + _tools(runtime).install
    # a project .npmrc (npm and bun both read it) carries the registry when one is set
    copy_npmrc = f" && cp {CONTEXT_DIR}/npmrc {PREFIX}/.npmrc" if registry.npm_registry else ""
    return [
        f"RUN mkdir -p {PREFIX} && cp {CONTEXT_DIR}/package.json {PREFIX}/{copy_npmrc}"
        f" && cd {PREFIX} && {install}"
        f" && ln -sfn {PREFIX}/node_modules /node_modules && chmod -R a+rX {PREFIX}"
    ]


def runtime_installer(runtime: Runtime, registry: Registry, ca: bool) -> Installer:
    """The install of an image's PREFIX, made beside and moved to /sandbox/node_modules: the folder
    that both require() and import (which ignores NODE_PATH) search for a program in /sandbox.
    No package's own scripts (install, postinstall) run in the installer, nor git: npm would run a
    git dependency's `prepare` script despite --ignore-scripts, so git dependencies fail instead."""
    env = f"{NO_GIT} NODE_EXTRA_CA_CERTS={CONTEXT_DIR}/ca.pem " if ca else f"{NO_GIT} "
    copy_npmrc = f" && cp {CONTEXT_DIR}/npmrc .npmrc" if registry.npm_registry else ""
    return Installer(
        "node_modules",
        f"mkdir -p {STAGING} && cd {STAGING} && cp {CONTEXT_DIR}/package.json .{copy_npmrc}"
        f" && {env}{_tools(runtime).install} --ignore-scripts && mv node_modules /sandbox/node_modules",
    )


def version_query(runtime: Runtime, names: Sequence[str]) -> list[str]:
    return [
        _tools(runtime).js,
        "-e",
        f"const fs = require('fs'); const out = {{}}; const dir = '{PREFIX}/node_modules/';\n"
        "for (const n of process.argv.slice(1)) {\n"
        "  try { out[n] = JSON.parse(fs.readFileSync(dir + n + '/package.json')).version }\n"
        "  catch { out[n] = null } }\n"
        "console.log(JSON.stringify(out))",
        *names,
    ]


def registry_probe(runtime: Runtime, registry: Registry, ca: str | None) -> Probe | None:
    if _tools(runtime) is not _NPM:
        return None  # bun reaches the same registry: node's npm probes it
    env = {"NODE_EXTRA_CA_CERTS": ca} if ca else {}
    if registry.npm_registry:
        env["npm_config_registry"] = registry.npm_registry
    return Probe("npm registry", "npm view is-number version", env)
