"""Where `isol8 run` writes the program's bytes: its own streams (filtered on a terminal) and the --out file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from isol8.errors import UsageError

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

    from isol8.frontends.cli.terminal import TerminalFilter


def is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return callable(isatty) and bool(isatty())
    except (ValueError, OSError):  # a closed stream
        return False


class ProgramOutput:
    """One of isol8's own streams carrying the program's bytes.

    To a pipe or file the bytes go unchanged; to a terminal through a TerminalFilter unless raw.
    A stream without a binary buffer (a StringIO in tests) gets them decoded, invalid bytes replaced.
    """

    def __init__(self, stream: TextIO, *, raw: bool = False) -> None:
        self.stream = stream
        self.filter: TerminalFilter | None = None
        if not raw and is_terminal(stream):
            from isol8.frontends.cli.terminal import TerminalFilter  # only for a terminal

            self.filter = TerminalFilter()

    def write(self, data: bytes) -> None:
        if self.filter is not None:
            data = self.filter.feed(data)
        self._put(data)

    def close(self) -> None:
        """Pass on what the filter holds back (shown escaped): call before isol8 writes its own messages."""
        if self.filter is not None:
            self._put(self.filter.flush())

    def _put(self, data: bytes) -> None:
        if not data:
            return
        binary = getattr(self.stream, "buffer", None)
        if binary is not None:
            self.stream.flush()  # isol8's own text written before goes first
            binary.write(data)
            binary.flush()
        else:
            self.stream.write(data.decode("utf-8", errors="replace"))
            self.stream.flush()


def program_outputs(stdout: TextIO, stderr: TextIO, *, raw: bool = False) -> dict[str, ProgramOutput]:
    return {"stdout": ProgramOutput(stdout, raw=raw), "stderr": ProgramOutput(stderr, raw=raw)}


@contextlib.contextmanager
def open_out(path: str | None) -> Iterator[BinaryIO | None]:
    """The --out file, created or truncated now, before anything runs: a path that cannot be written is exit 2."""
    if path is None:
        yield None
        return
    try:
        f = open(path, "wb")
    except OSError as exc:
        raise UsageError(f"--out: cannot write {path}: {exc.strerror or exc}") from None
    with f:
        yield f
