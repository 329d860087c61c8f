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
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from isol8.backends.engine import argv as A
from isol8.errors import BuildFailed, EngineError, EngineNotFound, EngineUnavailable
from isol8.log import get_logger
from isol8.process import StreamingProcess, decode

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.engine.images import ImageCalls
    from isol8.models import ImageInfo

log = get_logger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STEP_IMAGE = re.compile(r"^\s*-{2,3}>\s+(?:Using cache\s+)?([0-9a-f]{11,64})\s*$")
_STEP_HEADER = re.compile(r"^(?:Step|STEP) \d+/\d+ ?: (\S+)")
TAIL_LINES = 40


MAX_STEPS = 1000
MAX_LINE = 64 << 10
CLOCK_SLACK = timedelta(seconds=2)  # the engine stamps images with its own clock


class _Output:
    """What a build printed, kept bounded: the last lines (for the error) and its step images,
    less the FROM image (docker prints it as step 1's result; podman prints none)."""

    def __init__(self) -> None:
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.steps: dict[str, None] = {}
        self.bases: set[str] = set()
        self._after_from = False

    def add(self, line: str) -> None:
        self.tail.append(line)
        header = _STEP_HEADER.match(line)
        if header:
            self._after_from = header.group(1).upper() == "FROM"
            return
        match = _STEP_IMAGE.match(line)
        if match and self._after_from:
            self._after_from = False
            self.bases.add(match.group(1))
        elif match and len(self.steps) < MAX_STEPS:
            self.steps[match.group(1)] = None


def step_images(lines: Iterable[str]) -> list[str]:
    """The image IDs (short, as printed) of a build's steps, in the order they were made."""
    output = _Output()
    for line in lines:
        output.add(line)
    return list(output.steps)


def leftovers(
    steps: Sequence[str], dangling: Iterable[ImageInfo], since: datetime, bases: Collection[str] = ()
) -> list[str]:
    """The dangling images (full IDs) that this build's steps made, newest first: each named by
    a step line, made since the build started, and (but for the first step, printed before
    anything the build runs can print) built on an earlier step that is not the FROM image. A
    line the build's own RUN printed can name any image; only a layer of this build's own chain
    qualifies."""
    chosen: list[str] = []
    for i in reversed(range(len(steps))):
        earlier = [e for e in steps[:i] if e not in bases]
        for info in dangling:
            made_now = info.created is not None and info.created >= since
            on_chain = i == 0 or (bool(info.parent) and any(info.parent.startswith(e) for e in earlier))
            if made_now and on_chain and info.id.startswith(steps[i]):
                chosen.append(info.id)
    return list(dict.fromkeys(chosen))


def run_build(
    backend: ImageCalls,
    argv: list[str],
    tag: str,
    iidfile: str,
    on_output: Callable[[str], None] | None,
    timeout: float,
) -> str:
    """Run one build; its new image ID, else BuildFailed. Whatever ends it other than success
    (a failure, a timeout, Ctrl-C, a closed pipe) first removes the layers it left behind."""
    output = _Output()
    started = datetime.now(UTC) - CLOCK_SLACK
    pending = {"stdout": b"", "stderr": b""}
    deadline = time.monotonic() + timeout
    code: int | None = None

    def line_out(raw: bytes) -> None:
        line = _ANSI.sub("", decode(raw)).rstrip("\r")
        if line.strip():
            output.add(line)
            if on_output is not None:
                on_output(line)

    try:
        with StreamingProcess(argv, env={**os.environ, "DOCKER_CLI_HINTS": "false"}) as proc:
            for stream, data in proc.chunks(deadline):
                pending[stream] += data
                *lines, pending[stream] = pending[stream].split(b"\n")
                if len(pending[stream]) > MAX_LINE:  # output with no newline: shown in pieces, not held
                    lines.append(pending[stream])
                    pending[stream] = b""
                for raw in lines:
                    line_out(raw)
            for rest in pending.values():
                if rest:
                    line_out(rest)
            timed_out = proc.poll() is None and time.monotonic() >= deadline
            code = None if timed_out else proc.wait()
    finally:
        if code != 0:
            remove_leftovers(backend, output, started)
    if code == 0:
        with open(iidfile, encoding="utf-8") as f:
            return f.read().strip().removeprefix("sha256:")
    tail = "\n".join(output.tail)
    if code is None:
        raise BuildFailed(argv, None, "", tail, message=f"build of {tag} timed out after {timeout:g}s")
    error = backend.classify(argv, code, "", tail)
    if isinstance(error, EngineUnavailable | EngineNotFound):
        raise error
    raise BuildFailed(argv, code, "", tail, message=f"build of {tag} failed: {error.message}")


def remove_leftovers(backend: ImageCalls, output: _Output, since: datetime) -> None:
    """Remove this build's dangling layers; a removal can leave the layer below dangling in turn
    (podman does not remove untagged parents as docker does), so again until none is left."""
    steps = list(output.steps)
    removed: set[str] = set()
    for _ in range(len(steps)):
        try:
            done = backend.call(A.dangling_images_argv(backend.dialect), idempotent=True)
            dangling = [line.strip().removeprefix("sha256:") for line in done.stdout.split() if line.strip()]
            mine = [d for d in dangling if d not in removed and any(d.startswith(step) for step in steps)]
            chosen = leftovers(steps, backend.inspect_images(mine), since, output.bases)
            if not chosen:
                return
            for failure in backend.remove_images(chosen):
                log.debug("kept a failed build's layer: %s", failure.message)
            removed.update(chosen)
        except EngineError as exc:
            log.debug("could not remove a failed build's layers: %s", exc)
            return
