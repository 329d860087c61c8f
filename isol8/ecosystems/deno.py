"""deno packages: npm:NAME[@range] and jsr:@scope/NAME[@range], matched as npm ranges."""

from __future__ import annotations

import re

from isol8.ecosystems import Spec, no_requirements, npm, refuse, split_commas
from isol8.runtimes import Runtime

_JSR = re.compile(rf"(?P<name>@[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*)(?:@(?P<range>{npm.RANGE}))?")


def parse(spec: str) -> Spec:
    prefix, _, rest = spec.partition(":")
    if prefix == "npm":
        inner = npm.parse_npm(rest, spec)
        return Spec("npm:" + inner.name, "npm:" + inner.text, inner.constraint)
    if prefix == "jsr":
        match = _JSR.fullmatch(rest)
        if not match:
            raise refuse(spec, "expected jsr:@scope/name[@range]")
        return Spec("jsr:" + match.group("name"), spec, match.group("range") or "")
    raise refuse(spec, "deno packages are npm:NAME[@range] or jsr:@scope/NAME[@range]")


split = split_commas
matches = npm.matches


def read_requirements(runtime: Runtime, path: str, text: str) -> tuple[Spec, ...]:
    raise no_requirements(runtime)
