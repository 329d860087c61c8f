"""Smart discovery: which labelled image already has the requested packages, and what is left to install."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from isol8 import labels as L
from isol8.core.caches import default_cache_dir
from isol8.ecosystems import Spec, parse_specs, satisfies
from isol8.errors import UsageError
from isol8.models import ImageInfo, parse_time
from isol8.runtimes import Runtime

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Backend

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    ref: str
    info: ImageInfo
    packages: dict[str, Spec]  # normalised name -> the recorded spec
    versions: dict[str, str]  # normalised name -> resolved version

    @classmethod
    def from_image(cls, runtime: Runtime, info: ImageInfo) -> Candidate | None:
        recorded = info.labels.get(L.DEPENDENCIES)
        if not recorded or L.RESOLVED not in info.labels:
            return None  # only a finished build records resolved versions (a failed one may leave labelled layers)
        try:  # comma-aware: `numpy<2,>=1` and `requests[http2,socks]` are one spec each
            packages = {spec.name: spec for spec in parse_specs(runtime, [recorded])}
        except UsageError:
            return None  # a label isol8 did not write: not a candidate
        versions = {}
        for item in info.labels.get(L.RESOLVED, "").split(","):
            name, sep, version = item.rpartition("==")
            if sep:
                versions[name] = version
        ref = info.tags[0] if info.tags else info.id
        return cls(ref, info, packages, versions)

    def covers(self, runtime: Runtime, spec: Spec) -> bool:
        return spec.name in self.packages and satisfies(runtime, spec, self.versions.get(spec.name))

    @property
    def created(self) -> datetime:
        return self.info.created or _EPOCH


@dataclass(frozen=True)
class Resolution:
    runtime: Runtime
    image: str  # the image's name (as last seen), for people
    match: str  # exact | superset | partial | base | image
    install: tuple[Spec, ...]
    reason: str
    has_setup: bool = False
    image_id: str | None = None  # what a run uses: immune to tags moved since discovery

    @property
    def run_ref(self) -> str:
        return self.image_id or self.image

    def to_json(self) -> dict[str, object]:
        return {
            "runtime": self.runtime.name,
            "image": self.image,
            "match": self.match,
            "install": [s.text for s in self.install],
            "reason": self.reason,
        }


def candidates(backend: Backend, runtime: Runtime, cache_dir: Path | None = None) -> list[Candidate]:
    """One listing call for the IDs; labels come from a cache keyed by image ID (an image's labels never
    change for its ID) and only images never seen before are inspected, in one batched call. Names are
    as last seen: a run uses the image by ID, so a tag moved since cannot send it to another image."""
    ids = backend.list_images({L.RUNTIME: runtime.name})
    cache = LabelCache(cache_dir or default_cache_dir(), backend.cache_key, runtime.name)
    unknown = [image_id for image_id in ids if image_id not in cache.entries]
    if unknown:
        for info in backend.inspect_images(unknown):
            cache.entries[info.id] = {
                "labels": {k: v for k, v in info.labels.items() if k != L.SECCOMP_PROFILE},  # 11 KB, unused here
                "created": info.created.isoformat() if info.created else None,
                "tags": list(info.tags),
            }
    cache.save(keep=ids)
    found = []
    for image_id in ids:
        entry = cache.entries.get(image_id)
        if entry is None:
            continue
        info = ImageInfo(image_id, tuple(entry.get("tags") or ()), entry["labels"], parse_time(entry["created"]))
        candidate = Candidate.from_image(runtime, info)
        if candidate is not None:
            found.append(candidate)
    return found


class LabelCache:
    """image ID -> labels and creation time, one JSON file per engine and runtime."""

    def __init__(self, directory: Path, backend: str, runtime: str) -> None:
        self.path = directory / f"labels-{backend}-{runtime}.json"
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.entries: dict[str, dict] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.entries = {}
        self._loaded = set(self.entries)

    def save(self, keep: Sequence[str]) -> None:
        self.entries = {k: v for k, v in self.entries.items() if k in keep}
        if set(self.entries) == self._loaded:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs the next call an inspect


def choose(runtime: Runtime, requested: Sequence[Spec], found: Sequence[Candidate], base: str) -> Resolution:
    """exact > smallest superset > most coverage (install the rest); ties go to the newest image."""
    wanted = {s.name for s in requested}
    if not requested:
        return Resolution(runtime, base, "base", (), "no packages requested")
    scored = []
    for c in found:
        covered = [s for s in requested if c.covers(runtime, s)]
        if covered:
            scored.append((c, covered))
    full = [(c, cov) for c, cov in scored if len(cov) == len(requested)]
    exact = [c for c, _ in full if set(c.packages) == wanted]
    if exact:
        best = max(exact, key=lambda c: (c.created, c.ref))
        return Resolution(
            runtime,
            best.ref,
            "exact",
            (),
            f"{best.ref} has exactly {_names(requested)}",
            L.SETUP in best.info.labels,
            best.info.id,
        )
    if full:
        best = min((c for c, _ in full), key=lambda c: (len(c.packages), -c.created.timestamp(), c.ref))
        extra = sorted(set(best.packages) - wanted)
        return Resolution(
            runtime,
            best.ref,
            "superset",
            (),
            f"{best.ref} has {_names(requested)} and {len(extra)} more ({', '.join(extra)})",
            L.SETUP in best.info.labels,
            best.info.id,
        )
    if scored:
        best_c, covered = min(
            scored, key=lambda item: (-len(item[1]), len(item[0].packages), -item[0].created.timestamp(), item[0].ref)
        )
        rest = tuple(s for s in requested if s not in covered)
        return Resolution(
            runtime,
            best_c.ref,
            "partial",
            rest,
            f"{best_c.ref} has {_names(covered)}; {_names(rest)} still to install",
            L.SETUP in best_c.info.labels,
            best_c.info.id,
        )
    return Resolution(runtime, base, "base", tuple(requested), f"no image has any of {_names(requested)}")


def resolve(
    backend: Backend, runtime: Runtime, requested: Sequence[Spec], *, base: str, image: str | None = None
) -> Resolution:
    """The image to run requested packages in. With `image`, skip discovery but still install what it lacks."""
    if image is not None:
        info = backend.image(image)
        if info is None:
            raise UsageError(f"image not found: {image}")
        c = Candidate.from_image(runtime, info)
        rest = tuple(s for s in requested if c is None or not c.covers(runtime, s))
        reason = f"--image {image}" + (f"; {_names(rest)} still to install" if rest else " has everything requested")
        return Resolution(runtime, image, "image", rest, reason, L.SETUP in info.labels)
    return choose(runtime, requested, candidates(backend, runtime) if requested else [], base)


def _names(specs: Sequence[Spec]) -> str:
    return ", ".join(s.text for s in specs)
