"""Where `isol8 run` writes the program's bytes: its own streams (filtered on a terminal) and the --out file."""

from __future__ import annotations

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


def open_out(path: str | None) -> BinaryIO | None:
    """The --out file (the caller closes it), created or truncated now, before anything runs: a
    path that cannot be written is exit 2."""
    if path is None:
        return None
    try:
        return open(path, "wb")
    except OSError as exc:
        raise UsageError(f"--out: cannot write {path}: {exc.strerror or exc}") from None


def write_output_files(out_dir: str, files: dict[str, bytes]) -> None:
    """The run's output files under out_dir, at their paths relative to /sandbox (folders made).

    Never outside out_dir: each path was checked inside the sandbox, and a symlink already in
    out_dir, as a folder or as the file, is refused rather than followed."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    root = os.path.realpath(out_dir)
    for path, data in sorted(files.items()):
        target = os.path.normpath(os.path.join(root, path.removeprefix("/sandbox/")))
        if not path.startswith("/sandbox/") or os.path.commonpath([root, target]) != root or target == root:
            raise UsageError(f"--out-dir: not a path inside /sandbox: {path!r}")
        folder = root
        for part in os.path.relpath(os.path.dirname(target), root).split(os.sep):
            folder = os.path.join(folder, part) if part != "." else folder
            if os.path.islink(folder):
                raise UsageError(f"--out-dir: {folder} is a symlink: not writing {path} through it")
            if not os.path.isdir(folder):
                os.mkdir(folder)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise UsageError(f"--out-dir: cannot write {target}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
