"""Output files: the /sandbox paths a run returns, and the block the wrapper sends them in.

After the program has ended, the wrapper (isol8.core.payload) finds the regular files matching
each pattern (`find /sandbox -path PATTERN -type f`: a `*` also crosses `/`, symlinks are never
followed, neither as files nor as folders), tars them and sends the tar, base64, on stderr
between its "files" and "files-end" status lines, cut after TAR_MAX(limits) bytes. Here that
block becomes {path: bytes}: every file within the caps, or an OutputFilesError naming the
first that is not. Patterns that matched no file are listed, never fatal.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from isol8.errors import OutputFilesError, UsageError
from isol8.records import NamedTuple

SANDBOX = "/sandbox"
PATTERNS_MAX = 256
TAR_BLOCK = 512


class OutputLimits(NamedTuple):
    """`outputFiles` in the config: the most bytes one file, and all of a run's together, may hold."""

    max_file: int = 16 * 2**20
    max_total: int = 64 * 2**20


class OutputFiles(NamedTuple):
    files: dict[str, bytes]  # /sandbox path -> content
    missing: tuple[str, ...]  # the patterns that matched no regular file


def pattern(raw: str) -> str:
    """A pattern as the wrapper gets it: absolute under /sandbox (a relative one is relative to it)."""
    if not raw or "\0" in raw or "\n" in raw:
        raise UsageError(f"output path must be a file path or pattern under /sandbox: {raw!r}")
    path = posixpath.normpath(posixpath.join(SANDBOX, raw))
    if not path.startswith(SANDBOX + "/") or ".." in raw.split("/"):
        raise UsageError(f"output path must be inside /sandbox: {raw!r}")
    return path


def patterns(raws: Sequence[str]) -> tuple[str, ...]:
    if len(raws) > PATTERNS_MAX:
        raise UsageError(f"at most {PATTERNS_MAX} output paths")
    return tuple(dict.fromkeys(pattern(raw) for raw in raws))


def tar_max(limits: OutputLimits) -> int:
    """The most tar bytes the wrapper sends: the caps' worth of content and headers, and one more
    byte, so that a cut tar shows it was over."""
    return limits.max_total + TAR_BLOCK * (2 * PATTERNS_MAX + 64) + 1


def read_block(tar: bytes, wanted: Sequence[str], limits: OutputLimits) -> OutputFiles:
    """The wrapper's tar (already base64-decoded) -> the files, checked against the caps."""
    import fnmatch
    import io
    import tarfile

    files: dict[str, bytes] = {}
    total = 0
    cut = len(tar) >= tar_max(limits)
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for member in archive:
                name = posixpath.normpath(member.name)
                if not member.isfile() or name.startswith(("/", "..")):
                    continue  # only what find printed: regular files, relative to /sandbox
                path = f"{SANDBOX}/{name}"
                if member.size > limits.max_file:
                    raise OutputFilesError(
                        f"output file {path} holds {member.size} bytes, over the {limits.max_file}-byte "
                        "cap for one file (outputFiles.maxFileSize)"
                    )
                total += member.size
                if total > limits.max_total:
                    raise OutputFilesError(
                        f"output files over the {limits.max_total}-byte cap for a run (outputFiles.maxTotalSize) "
                        f"at {path}"
                    )
                data = archive.extractfile(member)
                content = data.read() if data is not None else b""
                if len(content) != member.size:
                    break  # cut short: only the cap explains it (checked below)
                files[path] = content
    except tarfile.TarError:
        if not cut:
            raise OutputFilesError("the output files could not be read back from the sandbox") from None
    if cut:  # headers and padding alone never fill the allowance: content was over the cap
        raise OutputFilesError(
            f"output files over the {limits.max_total}-byte cap for a run (outputFiles.maxTotalSize)"
        )
    missing = tuple(p for p in wanted if not any(fnmatch.fnmatchcase(path, p) for path in files))
    return OutputFiles(files, missing)
