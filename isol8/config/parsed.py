"""Config files' parsed data, kept under ~/.cache/isol8/config: a run that finds a file's text
unchanged skips its parser, which costs every run ~1.5 ms for JSON (the json package) and
~15 ms for YAML (PyYAML). The data is validated afresh all the same; only text that parsed
and validated is kept, with the text itself, so nothing but the very same bytes reuses it."""

from __future__ import annotations

import marshal
import os
import zlib

from isol8.core.caches import cache_dir_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _entry(source: str) -> tuple[str, str]:
    """(the source's absolute path, the cache file that holds its data)."""
    where = os.path.abspath(source)
    return where, os.path.join(cache_dir_name(), "config", f"{zlib.crc32(where.encode()):08x}.marshal")


def kept(source: str, text: str) -> dict[str, Any] | None:
    """The data parsed from exactly this text of source, if it was kept."""
    where, path = _entry(source)
    try:
        with open(path, "rb") as f:
            entry = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):  # none, or not one isol8 wrote
        return None
    if type(entry) is tuple and len(entry) == 3 and entry[:2] == (where, text) and type(entry[2]) is dict:
        return entry[2]
    return None


def keep(source: str, text: str, data: dict[str, Any]) -> None:
    """Keep what text parsed to, when it can be (YAML's dates cannot: then nothing is kept)."""
    where, path = _entry(source)
    try:
        blob = marshal.dumps((where, text, data))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass
