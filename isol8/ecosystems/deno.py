"""deno packages: npm:NAME[@range] and jsr:@scope/NAME[@range], matched as npm ranges, cached by deno cache."""

from __future__ import annotations

import re
from collections.abc import Sequence

from isol8.ecosystems import CONTEXT_DIR, PREFIX, Installer, Probe, Spec, no_requirements, npm, refuse, split_commas
from isol8.runtimes import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.ecosystems import Registry

RUN_TIME_REFUSAL = None

DENO_DIR = f"{PREFIX}/deno"
RUNTIME_DENO_DIR = "/sandbox/.deno"  # the base image's own DENO_DIR

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


def context_files(specs: Sequence[Spec], inherited: Sequence[Spec], registry: Registry) -> dict[str, str]:
    files = {"deps.ts": "".join(f'import "{s.text}";\n' for s in sorted({*inherited, *specs}))}
    if registry.npm_registry:
        files["npmrc"] = npm.npmrc(registry.npm_registry)
    return files


def install_lines(runtime: Runtime, registry: Registry, ca: bool) -> list[str]:
    env = f"DENO_CERT={CONTEXT_DIR}/ca.pem " if ca else ""
    if registry.npm_registry:
        env += f"NPM_CONFIG_USERCONFIG={CONTEXT_DIR}/npmrc "
    return [
        f"RUN mkdir -p {DENO_DIR} && cp {CONTEXT_DIR}/deps.ts {PREFIX}/deps.ts && {env}DENO_DIR={DENO_DIR} "
        f"deno cache {PREFIX}/deps.ts && chmod -R a+rX {PREFIX}",
        f"ENV DENO_DIR={DENO_DIR}",
    ]


def runtime_installer(runtime: Runtime, registry: Registry, ca: bool) -> Installer:
    """deno cache into /sandbox/.deno, which starts as a copy of the image's own cache (a custom image's
    packages stay found once the program's DENO_DIR is /sandbox/.deno)."""
    env = f"DENO_CERT={CONTEXT_DIR}/ca.pem " if ca else ""
    if registry.npm_registry:
        env += f"NPM_CONFIG_USERCONFIG={CONTEXT_DIR}/npmrc "
    return Installer(
        ".deno",
        f'mkdir -p .deno && {{ [ "${{DENO_DIR:-{RUNTIME_DENO_DIR}}}" = {RUNTIME_DENO_DIR} ] || [ ! -d "$DENO_DIR" ] || '
        f'cp -a "$DENO_DIR/." .deno/; }} && {env}DENO_DIR={RUNTIME_DENO_DIR} deno cache {CONTEXT_DIR}/deps.ts',
        {"DENO_DIR": RUNTIME_DENO_DIR},
    )


def version_query(runtime: Runtime, names: Sequence[str]) -> list[str]:
    return [
        "bash",
        "-c",
        'printf "{"; sep=""; for n in "$@"; do v=$(ls -1 ' + DENO_DIR + '/npm/*/"${n#npm:}"/ 2>/dev/null '
        "| grep -E '^[0-9]' | sort -V | tail -n 1); "
        'printf \'%s"%s": %s\' "$sep" "$n" "${v:+\\"$v\\"}"; [ -n "$v" ] || printf null; sep=", "; done; echo "}"',
        "isol8",
        *names,
    ]


def registry_probe(runtime: Runtime, registry: Registry, ca: str | None) -> Probe | None:
    return None
