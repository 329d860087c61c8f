"""Pure builders of engine argv: no I/O, every user value its own element."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from isol8.backends.engine.dialect import Dialect


def opt(name: str, value: object | None) -> list[str]:
    return [] if value is None else [name, str(value)]


def flag(name: str, on: bool) -> list[str]:
    return [name] if on else []


def repeat(name: str, values: Iterable[object]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [name, str(value)]
    return out


def label_filters(labels: Mapping[str, str | None]) -> list[str]:
    return repeat("--filter", (f"label={k}" if v is None else f"label={k}={v}" for k, v in labels.items()))


def version_argv(d: Dialect) -> list[str]:
    return [d.binary, "version", "--format", d.version_format]


def image_inspect_argv(d: Dialect, refs: Sequence[str]) -> list[str]:
    return [d.binary, "image", "inspect", *refs]


def images_argv(d: Dialect, labels: Mapping[str, str | None]) -> list[str]:
    return [d.binary, "images", "-q", "--no-trunc", *label_filters(labels)]


def build_argv(
    d: Dialect,
    *,
    tag: str,
    context: str,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    iidfile: str | None = None,
    pull: bool = False,
) -> list[str]:
    return [
        d.binary,
        "build",
        "--force-rm",
        *flag("--pull", pull),
        *opt("-f", dockerfile),
        *repeat("--build-arg", (f"{k}={v}" for k, v in (build_args or {}).items())),
        *repeat("--label", (f"{k}={v}" for k, v in (labels or {}).items())),
        *opt("--iidfile", iidfile),
        "-t",
        d.local_image(tag),
        context,
    ]


def rmi_argv(d: Dialect, refs: Sequence[str]) -> list[str]:
    return [d.binary, "rmi", *refs]


def ps_argv(d: Dialect, labels: Mapping[str, str | None]) -> list[str]:
    return [d.binary, "ps", "-a", "-q", "--no-trunc", *label_filters(labels)]


def container_inspect_argv(d: Dialect, ids: Sequence[str]) -> list[str]:
    return [d.binary, "container", "inspect", *ids]


def rm_argv(d: Dialect, ids: Sequence[str]) -> list[str]:
    return [d.binary, "rm", *d.rm_force, *ids]


def kill_argv(d: Dialect, name: str) -> list[str]:
    return [d.binary, "kill", name]
