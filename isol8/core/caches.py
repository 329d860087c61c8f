"""Small on-disk caches under ~/.cache/isol8, cheap to import (the run path reads them)."""

from __future__ import annotations

import os
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def cache_dir_name() -> str:
    """~/.cache/isol8 (under XDG_CACHE_HOME, if set), as a string: for the run path, which has
    no pathlib (it costs every podman run ~8 ms, with the URL and address parsers it loads)."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "isol8")


def default_cache_dir() -> Path:
    from pathlib import Path

    return Path(cache_dir_name())


class ResolutionCache:
    """What `run --install` chose for a package set, so a repeated run makes no discovery call.

    Dropped whenever isol8 builds or removes images; an entry whose image has gone is found out
    by the run itself (the engine refuses to start it, nothing runs) and resolved afresh.
    """

    def __init__(self, backend: str, directory: Path | None = None) -> None:
        """backend: the backend's cache_key, so that two engines never share an answer."""
        self.path = (directory or default_cache_dir()) / f"resolutions-{backend}.json"

    @staticmethod
    def key(runtime: str, base: str, specs: Sequence[str]) -> str:
        """specs: normalised spec texts, or the --install values exactly as given (a raw key)."""
        return "\0".join([runtime, base, *specs])

    def _load(self) -> dict[str, str]:
        import json

        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        value = self._load().get(key)
        return value if isinstance(value, str) else None

    def put(self, key: str, image: str) -> None:
        import json

        data = self._load()
        data[key] = image
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass

    def clear(self) -> None:
        for path in self.path.parent.glob("resolutions-*.json"):
            try:
                path.unlink()
            except OSError:
                pass
