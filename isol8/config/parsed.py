"""Config files' parsed data, kept under ~/.cache/isol8/config: a run that finds a file's text
unchanged skips its parser, which costs every run ~1.5 ms for JSON (the json package) and
~15 ms for YAML (PyYAML). The data is validated afresh all the same; only text that parsed
and validated is kept, with the text itself, so nothing but the very same bytes reuses it. An
entry counts only in a file of your own that nobody else can write (a cache folder another
user can write to could otherwise map a trusted file's text to data of their choosing)."""

from __future__ import annotations

import _thread
import marshal
import os
import stat

from isol8.core.caches import cache_dir_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = "isol8-config-1"  # what an entry holds: (FORMAT, path, text, data)
MAX_ENTRY_BYTES = 4 << 20


def _entry(source: str) -> tuple[str, str]:
    """(the source's absolute path, the cache file that holds its data)."""
    where = os.path.abspath(source)
    return where, os.path.join(cache_dir_name(), "config", f"{_fnv1a(os.fsencode(where)):016x}.marshal")


def _fnv1a(data: bytes) -> int:
    """A 64-bit FNV-1a hash: a file name for a path, without zlib's extension module (its
    loading costs every run a third of a millisecond). The entry itself holds the path."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def kept(source: str, text: str) -> dict[str, Any] | None:
    """The data parsed from exactly this text of source, if it was kept."""
    try:
        where, path = _entry(source)
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as f:
            st = os.fstat(f.fileno())
            if not _own(st) or not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
                return None
            entry = marshal.loads(f.read(MAX_ENTRY_BYTES))
    except (OSError, EOFError, ValueError, TypeError, MemoryError):  # none, or not one isol8 wrote
        return None
    if type(entry) is tuple and len(entry) == 4 and entry[:3] == (FORMAT, where, text) and type(entry[3]) is dict:
        return entry[3]
    return None


def keep(source: str, text: str, data: dict[str, Any]) -> None:
    """Keep what text parsed to, when it can be (YAML's dates cannot: then nothing is kept)."""
    try:
        where, path = _entry(source)
        blob = marshal.dumps((FORMAT, where, text, data))
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _own(os.stat(folder)):
            return
        tmp = f"{path}.{os.getpid()}-{_thread.get_ident()}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def _own(st: os.stat_result) -> bool:
    """Yours, and writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
