"""Debian packages for bash: NAME or NAME=VERSION, matched exactly, installed with apt-get at build time."""

from __future__ import annotations

import re
from collections.abc import Sequence

from isol8.ecosystems import CONTEXT_DIR, Installer, Probe, Spec, no_requirements, refuse, split_commas
from isol8.runtimes import Runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.ecosystems import Registry

RUN_TIME_REFUSAL = (
    "bash has no run-time installs (its root filesystem is read-only); build a custom image: "
    "isol8 build --base bash --tag my-bash --install jq, then isol8 run --image my-bash ..."
)

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


def context_files(specs: Sequence[Spec], inherited: Sequence[Spec], registry: Registry) -> dict[str, str]:
    return {"apt.txt": "".join(f"{s.text}\n" for s in specs)}


def install_lines(runtime: Runtime, registry: Registry, ca: bool) -> list[str]:
    return [
        f"RUN apt-get update && xargs -a {CONTEXT_DIR}/apt.txt apt-get install -y --no-install-recommends"
        " && apt-get clean && rm -rf /var/lib/apt/lists/*"
    ]


def runtime_installer(runtime: Runtime, registry: Registry, ca: bool) -> Installer:
    raise AssertionError(RUN_TIME_REFUSAL)  # never asked: RUN_TIME_REFUSAL says why


def version_query(runtime: Runtime, names: Sequence[str]) -> list[str]:
    return [
        "bash",
        "-c",
        "printf '{'; sep=''; for n in \"$@\"; do v=$(dpkg-query -W -f '${Version}' \"$n\" 2>/dev/null); "
        'printf \'%s"%s": "%s"\' "$sep" "$n" "$v"; sep=\', \'; done; echo \'}\'',
        "isol8",
        *names,
    ]


def registry_probe(runtime: Runtime, registry: Registry, ca: str | None) -> Probe | None:
    return None
