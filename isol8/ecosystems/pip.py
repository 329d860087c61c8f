"""PyPI packages for python: PEP 508 names with PEP 440 specifiers, requirements.txt, pip install, and metadata."""

from __future__ import annotations

import re
from collections.abc import Sequence

from isol8.ecosystems import CONTEXT_DIR, Installer, Probe, Spec, parse_specs, refuse
from isol8.runtimes import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.ecosystems import Registry

RUN_TIME_REFUSAL = None

# Characters a spec may contain at all: no whitespace, quotes, `;`, `$`, backticks, `&`, `|`...
_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*+]*")


def parse(spec: str) -> Spec:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if not _CHARS.fullmatch(spec):
        raise refuse(spec, "only a name, [extras] and version specifiers are allowed (no URLs, markers or spaces)")
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise refuse(spec, str(exc)) from None
    if req.url or req.marker:
        raise refuse(spec, "URLs and environment markers are not allowed")
    name = canonicalize_name(req.name)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    constraint = ",".join(sorted(str(s) for s in req.specifier))
    return Spec(name, f"{name}{extras}{constraint}", constraint)


def split(value: str) -> list[str]:
    """Split on commas, except inside extras and specifier lists (`a[x,y]>=1,<2` is one spec)."""
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


def matches(constraint: str, version: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return SpecifierSet(constraint).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


def read_requirements(runtime: Runtime, path: str, text: str) -> tuple[Spec, ...]:
    """requirements.txt: one spec a line; comments and blank lines skipped, options refused as specs."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return parse_specs(runtime, [line for line in lines if line])


def context_files(specs: Sequence[Spec], inherited: Sequence[Spec], registry: Registry) -> dict[str, str]:
    files = {"requirements.txt": "".join(f"{s.text}\n" for s in specs)}
    if registry.pip_index_url:
        files["pip.conf"] = f"[global]\nindex-url = {registry.pip_index_url}\n"
    return files


def install_lines(runtime: Runtime, registry: Registry, ca: bool) -> list[str]:
    env = f"PIP_CERT={CONTEXT_DIR}/ca.pem " if ca else ""
    if registry.pip_index_url:
        env += f"PIP_CONFIG_FILE={CONTEXT_DIR}/pip.conf "
    return [
        f"RUN {env}python3 -m pip install --no-cache-dir --break-system-packages --disable-pip-version-check "
        f"--root-user-action=ignore -r {CONTEXT_DIR}/requirements.txt"
    ]


def runtime_installer(runtime: Runtime, registry: Registry, ca: bool) -> Installer:
    """pip's user scheme: /sandbox/.local, which the runtime's image already names (PYTHONUSERBASE).

    Wheels only: no package's own code (a setup.py, a build backend) runs in the installer."""
    env = f"PIP_CERT={CONTEXT_DIR}/ca.pem " if ca else ""
    if registry.pip_index_url:
        env += f"PIP_CONFIG_FILE={CONTEXT_DIR}/pip.conf "
    return Installer(
        ".local",
        f"{env}PYTHONUSERBASE=/sandbox/.local python3 -m pip install --user --only-binary=:all: --no-cache-dir "
        f"--disable-pip-version-check --no-warn-script-location -r {CONTEXT_DIR}/requirements.txt",
        {"PYTHONUSERBASE": "/sandbox/.local"},
    )


def version_query(runtime: Runtime, names: Sequence[str]) -> list[str]:
    return [
        "python3",
        "-c",
        "import importlib.metadata as m, json, re, sys\n"
        "found = {re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in m.distributions()}\n"
        "print(json.dumps({n: found.get(n) for n in sys.argv[1:]}))",
        *names,
    ]


def registry_probe(runtime: Runtime, registry: Registry, ca: str | None) -> Probe | None:
    env = {"PIP_CERT": ca} if ca else {}
    if registry.pip_index_url:
        env["PIP_INDEX_URL"] = registry.pip_index_url
    return Probe("package index", "python3 -m pip index versions six", env)
