"""Package specs per ecosystem: validated before anything runs, normalised, and matched against versions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from isol8.errors import UsageError
from isol8.runtimes import Runtime

# Characters a spec may contain at all: no whitespace, quotes, `;`, `$`, backticks, `&`, `|`...
_PY_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*+]*")
_NPM_NAME = r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
_NPM_RANGE = r"[A-Za-z0-9.^~<>=*+_-]+(?:\|\|[A-Za-z0-9.^~<>=*+_-]+)*"
_NPM_SPEC = re.compile(rf"(?P<name>{_NPM_NAME})(?:@(?P<range>{_NPM_RANGE}))?")
_JSR_SPEC = re.compile(rf"(?P<name>@[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*)(?:@(?P<range>{_NPM_RANGE}))?")


@dataclass(frozen=True, order=True)
class Spec:
    """One requested package: `name` is the ecosystem's normalised name, `text` the normalised spec."""

    name: str
    text: str
    constraint: str = ""  # a PEP 440 specifier set or an npm range; "" means any version


def ecosystem(runtime: Runtime) -> str:
    return runtime.ecosystem


def _bad(spec: str, why: str) -> UsageError:
    return UsageError(f"refusing package spec {spec!r}: {why}")


def parse_spec(runtime: Runtime, raw: str) -> Spec:
    """Validate and normalise one spec; anything that could be an option or shell syntax is refused."""
    spec = raw.strip()
    if not spec:
        raise _bad(raw, "empty")
    if spec.startswith("-"):
        raise _bad(raw, "looks like an option")
    kind = ecosystem(runtime)
    if kind == "pip":
        return _parse_python(spec)
    if kind == "npm":
        return _parse_npm(spec, spec)
    if kind == "deno":
        prefix, _, rest = spec.partition(":")
        if prefix == "npm":
            inner = _parse_npm(rest, spec)
            return Spec("npm:" + inner.name, "npm:" + inner.text, inner.constraint)
        if prefix == "jsr":
            match = _JSR_SPEC.fullmatch(rest)
            if not match:
                raise _bad(spec, "expected jsr:@scope/name[@range]")
            constraint = match.group("range") or ""
            return Spec("jsr:" + match.group("name"), spec, constraint)
        raise _bad(spec, "deno packages are npm:NAME[@range] or jsr:@scope/NAME[@range]")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*(=[A-Za-z0-9.+:~-]+)?", spec):
        raise _bad(spec, "expected a Debian package name, optionally NAME=VERSION")
    name, _, version = spec.partition("=")
    return Spec(name, spec, f"=={version}" if version else "")


def _parse_python(spec: str) -> Spec:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if not _PY_CHARS.fullmatch(spec):
        raise _bad(spec, "only a name, [extras] and version specifiers are allowed (no URLs, markers or spaces)")
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise _bad(spec, str(exc)) from None
    if req.url or req.marker:
        raise _bad(spec, "URLs and environment markers are not allowed")
    name = canonicalize_name(req.name)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    constraint = ",".join(sorted(str(s) for s in req.specifier))
    return Spec(name, f"{name}{extras}{constraint}", constraint)


def _parse_npm(spec: str, shown: str) -> Spec:
    match = _NPM_SPEC.fullmatch(spec)
    if not match:
        raise _bad(shown, "expected NAME, @scope/NAME, NAME@range (lowercase npm names)")
    constraint = match.group("range") or ""
    if constraint:
        import nodesemver

        if constraint not in ("latest", "next") and nodesemver.valid_range(constraint, loose=False) is None:
            raise _bad(shown, f"{constraint!r} is not a version range")
    if constraint in ("latest", "next"):  # dist-tags name no range: any installed version will do
        return Spec(match.group("name"), match.group("name"), "")
    return Spec(match.group("name"), spec, constraint)


_SCREEN = re.compile(r"(?!-)[A-Za-z0-9@:/._\-\[\],<>=!~*+^|]+")


def screen(values: Iterable[str]) -> None:
    """A cheap first check (no imports) that refuses options, shell syntax and whitespace in specs."""
    for value in values:
        for part in value.split(","):
            if part and not _SCREEN.fullmatch(part):
                raise _bad(part, "only names, versions and extras are allowed (no options, spaces or shell syntax)")


def parse_specs(runtime: Runtime, values: Iterable[str]) -> tuple[Spec, ...]:
    """Repeated and comma-separated values; normalised, de-duplicated, sorted."""
    specs: dict[str, Spec] = {}
    for value in values:
        for part in _split(runtime, value):
            spec = parse_spec(runtime, part)
            specs[spec.text] = spec
    return tuple(sorted(specs.values()))


def _split(runtime: Runtime, value: str) -> list[str]:
    """Split on commas, except inside Python extras and specifier lists (`a[x,y]>=1,<2` is one spec)."""
    if ecosystem(runtime) != "pip":
        return [p for p in value.split(",") if p.strip()]
    parts = [""]
    depth = 0
    for char in value:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append("")
        else:
            parts[-1] += char
    merged: list[str] = []
    for part in parts:
        if merged and re.match(r"^\s*[<>=!~]", part):
            merged[-1] += "," + part  # `numpy>=1,<2`: this comma belongs to the specifier set
        else:
            merged.append(part)
    return [p for p in merged if p.strip()]


def satisfies(runtime: Runtime, spec: Spec, version: str | None) -> bool:
    """Does an installed `version` of spec.name meet the spec's constraint? Unknown version: only if unconstrained."""
    if not spec.constraint:
        return True
    if not version:
        return False
    kind = ecosystem(runtime)
    if kind == "pip":
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version

        try:
            return SpecifierSet(spec.constraint).contains(Version(version), prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            return False
    if kind in ("npm", "deno"):
        import nodesemver

        try:
            return bool(nodesemver.satisfies(version, spec.constraint, loose=False))
        except Exception:
            return False
    return spec.constraint == f"=={version}"
