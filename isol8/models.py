"""Frozen records parsed from the engines' inspect JSON (docker and podman shapes alike)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

_FRACTION = re.compile(r"\.(\d+)")


def strip_digest_prefix(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 with up to nanoseconds (docker) or a numeric offset (podman)."""
    if not text:
        return None
    text = text.strip().replace("Z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    text = re.sub(r"^(\S+) (\S+) ([+-]\d{4}) \S+$", r"\1T\2\3", text)  # `podman images` style
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    config = obj.get("Config") or {}
    labels = config.get("Labels") or obj.get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    size: int = 0
    parent: str = ""  # the image it was built on, by a builder that keeps layers as images

    @classmethod
    def from_inspect(cls, obj: Mapping[str, Any]) -> ImageInfo:
        return cls(
            id=strip_digest_prefix(str(obj.get("Id", ""))),
            tags=tuple(obj.get("RepoTags") or ()),
            labels=_labels(obj),
            created=parse_time(obj.get("Created")),
            size=int(obj.get("Size") or 0),
            parent=strip_digest_prefix(str(obj.get("Parent") or "")),
        )


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    labels: Mapping[str, str]
    running: bool
    exit_code: int | None
    oom_killed: bool
    image: str
    status: str = ""  # the engine's word: created, running, exited...

    @property
    def ended(self) -> bool:
        """It ran and stopped (not one still being created and started)."""
        return self.status in ("exited", "dead", "stopped")

    @classmethod
    def from_inspect(cls, obj: Mapping[str, Any]) -> ContainerInfo:
        state = obj.get("State") or {}
        config = obj.get("Config") or {}
        return cls(
            id=strip_digest_prefix(str(obj.get("Id", ""))),
            name=str(obj.get("Name", "")).lstrip("/"),
            labels=_labels(obj),
            running=bool(state.get("Running")),
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            image=str(config.get("Image") or obj.get("ImageName") or obj.get("Image") or ""),
            status=str(state.get("Status") or ""),
        )


@dataclass(frozen=True)
class Captured:
    """What a short, non-streamed container command printed."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class EngineInfo:
    """What `info` says about the engine: for `isol8 doctor`."""

    server_version: str
    rootless: bool
    cgroup_version: str  # "v1" or "v2"
    controllers: tuple[str, ...]  # the cgroup controllers limits need, of memory, pids and cpu
    root_dir: str  # where its images live, on the engine's host
    seccomp: bool
