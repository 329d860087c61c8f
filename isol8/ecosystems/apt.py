"""Debian packages for bash: NAME or NAME=VERSION, matched exactly."""

from __future__ import annotations

import re

from isol8.ecosystems import Spec, no_requirements, refuse, split_commas
from isol8.runtimes import Runtime

_SPEC = re.compile(r"[a-z0-9][a-z0-9.+-]*(=[A-Za-z0-9.+:~-]+)?")


def parse(spec: str) -> Spec:
    if not _SPEC.fullmatch(spec):
        raise refuse(spec, "expected a Debian package name, optionally NAME=VERSION")
    name, _, version = spec.partition("=")
    return Spec(name, spec, f"=={version}" if version else "")


split = split_commas


def matches(constraint: str, version: str) -> bool:
    return constraint == f"=={version}"


def read_requirements(runtime: Runtime, path: str, text: str) -> tuple[Spec, ...]:
    raise no_requirements(runtime)
