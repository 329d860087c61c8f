"""`docker build` / `podman build`: streamed line by line, and a failed build's layers removed.

A failed build leaves the images of the steps that worked behind, untagged (docker's classic
builder and podman both keep them as cache): about the size of the base each. Their IDs are in
the build's own output (` ---> 1a2b3c4d5e6f`, `--> 1a2b3c4d5e6`), so exactly this build's
leftovers are removed, and only those that are now dangling: never a tagged image (a cached
step can name the base itself) and never a layer another image still builds on.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable

from isol8.backends.engine import argv as A
from isol8.errors import BuildFailed, EngineError, EngineNotFound, EngineUnavailable
from isol8.log import get_logger
from isol8.process import StreamingProcess, decode

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.engine.backend import EngineBackend

log = get_logger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STEP_IMAGE = re.compile(r"^\s*-{2,3}>\s+(?:Using cache\s+)?([0-9a-f]{11,64})\s*$")
TAIL_LINES = 40


def step_images(lines: Iterable[str]) -> list[str]:
    """The image IDs (short, as printed) of a build's steps, in the order they were made."""
    found = (_STEP_IMAGE.match(line) for line in lines)
    return list(dict.fromkeys(m.group(1) for m in found if m))


def leftovers(steps: Iterable[str], dangling: Iterable[str]) -> list[str]:
    """The dangling images (full IDs) among a build's steps, newest first."""
    full = list(dangling)
    chosen = [next((d for d in full if d.startswith(step)), None) for step in reversed(list(steps))]
    return list(dict.fromkeys(d for d in chosen if d))


def run_build(
    backend: EngineBackend,
    argv: list[str],
    tag: str,
    iidfile: str,
    on_output: Callable[[str], None] | None,
    timeout: float,
) -> str:
    """Run one build; its new image ID, else BuildFailed after removing what it left behind."""
    seen: list[str] = []
    pending = {"stdout": b"", "stderr": b""}
    deadline = time.monotonic() + timeout

    def line_out(raw: bytes) -> None:
        line = _ANSI.sub("", decode(raw)).rstrip("\r")
        if line.strip():
            seen.append(line)
            if on_output is not None:
                on_output(line)

    with StreamingProcess(argv, env={**os.environ, "DOCKER_CLI_HINTS": "false"}) as proc:
        for stream, data in proc.chunks(deadline):
            pending[stream] += data
            *lines, pending[stream] = pending[stream].split(b"\n")
            for raw in lines:
                line_out(raw)
        for rest in pending.values():
            if rest:
                line_out(rest)
        timed_out = proc.poll() is None and time.monotonic() >= deadline
        code = None if timed_out else proc.wait()
    if code == 0:
        with open(iidfile, encoding="utf-8") as f:
            return f.read().strip().removeprefix("sha256:")
    tail = "\n".join(seen[-TAIL_LINES:])
    remove_leftovers(backend, step_images(seen))
    if code is None:
        raise BuildFailed(argv, None, "", tail, message=f"build of {tag} timed out after {timeout:g}s")
    error = backend.classify(argv, code, "", tail)
    if isinstance(error, EngineUnavailable | EngineNotFound):
        raise error
    raise BuildFailed(argv, code, "", tail, message=f"build of {tag} failed: {error.message}")


def remove_leftovers(backend: EngineBackend, steps: list[str]) -> None:
    if not steps:
        return
    try:
        done = backend.call(A.dangling_images_argv(backend.dialect), idempotent=True)
        dangling = [line.strip().removeprefix("sha256:") for line in done.stdout.split() if line.strip()]
        for failure in backend.remove_images(leftovers(steps, dangling)):
            log.debug("kept a failed build's layer: %s", failure.message)
    except EngineError as exc:
        log.debug("could not remove a failed build's layers: %s", exc)
