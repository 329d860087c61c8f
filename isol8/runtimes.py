"""The five runtimes: names, file extensions, the command that runs a script file and their package ecosystem."""

from __future__ import annotations

import posixpath

from isol8.errors import UsageError
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms


class Runtime(NamedTuple):
    name: str
    extensions: tuple[str, ...]
    interpreter: tuple[str, ...]
    ecosystem: str = "pip"  # a module of isol8.ecosystems

    @property
    def default_extension(self) -> str:
        return self.extensions[0]

    def command(self, path: str) -> list[str]:
        return [*self.interpreter, path]

    @property
    def image(self) -> str:
        return f"isol8:{self.name}"


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("python", (".py",), ("python3",), "pip"),
        Runtime("node", (".js", ".mjs", ".cjs"), ("node",), "npm"),  # .js: node tells ESM from CommonJS
        Runtime("bun", (".ts",), ("bun", "run"), "npm"),
        # the container is the sandbox: deno's own permission prompts would only hang
        Runtime("deno", (".mts",), ("deno", "run", "--allow-all", "--no-prompt"), "deno"),
        Runtime("bash", (".sh",), ("bash",), "apt"),
    )
}
NAMES = tuple(RUNTIMES)
_BY_EXTENSION = {ext: r for r in RUNTIMES.values() for ext in r.extensions}


def get(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UsageError(f"unknown runtime {name!r}; choose one of: {', '.join(NAMES)}") from None


def detect(filename: str) -> Runtime:
    ext = posixpath.splitext(filename)[1].lower()
    runtime = _BY_EXTENSION.get(ext)
    if runtime is None:
        known = ", ".join(f"{e} ({r.name})" for e, r in _BY_EXTENSION.items())
        raise UsageError(f"cannot tell the runtime of {filename!r} from its extension; use -r/--runtime ({known})")
    return runtime
