"""Runtime base images isol8:<runtime>: where their Dockerfiles live, their content hash, building them."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from isol8 import labels as L
from isol8.core.egress import PROXY_IMAGE
from isol8.errors import (
    BaseImageUnavailable,
    BuildFailed,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
    ImageNotFound,
    RegistryUnreachable,
)
from isol8.log import get_logger
from isol8.runtimes import RUNTIMES

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Backend

log = get_logger(__name__)

_ARG_BASE = re.compile(r"^ARG BASE_IMAGE=(\S+)\s*$", re.MULTILINE)


def context_dir(runtime: str) -> Path:
    """The build context of isol8:<runtime>: $ISOL8_DOCKERFILES/<runtime> if set, else the shipped dockerfiles/."""
    custom = os.environ.get("ISOL8_DOCKERFILES")
    if custom:
        return Path(custom) / runtime
    try:
        return Path(str(resources.files("isol8.dockerfiles").joinpath(runtime)))
    except ModuleNotFoundError:  # imported from a source checkout, not an installed isol8
        return Path(__file__).resolve().parents[2] / "dockerfiles" / runtime


def default_base_image(runtime: str) -> str:
    """The upstream image named by the Dockerfile's `ARG BASE_IMAGE=` line."""
    text = (context_dir(runtime) / "Dockerfile").read_text(encoding="utf-8")
    match = _ARG_BASE.search(text)
    if match is None:
        raise RuntimeError(f"dockerfiles/{runtime}/Dockerfile has no ARG BASE_IMAGE= line")
    return match.group(1)


PROXY = "proxy"  # isol8:proxy, a filtered run's egress proxy: built like a runtime's image, run by none


def image_tag(name: str) -> str:
    """isol8:<runtime>, or isol8:proxy."""
    return PROXY_IMAGE if name == PROXY else RUNTIMES[name].image


def proxy_base(base_images: Mapping[str, str]) -> str | None:
    """The proxy's base: baseImages.proxy, else bash's (a plain Debian, as the proxy needs)."""
    return base_images.get(PROXY) or base_images.get("bash")


def seccomp_label() -> str:
    """isol8's seccomp profile as compact JSON: the value of L.SECCOMP_PROFILE on its images."""
    import json

    from isol8.core.sandbox import default_seccomp_profile

    with open(default_seccomp_profile(), encoding="utf-8") as f:
        return json.dumps(json.load(f), separators=(",", ":"), sort_keys=True)


def build_hash(runtime: str, base_image: str) -> str:
    """SHA-256 of the base image ref and every file of the build context (names and bytes, length-framed)."""
    digest = hashlib.sha256()

    def frame(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)

    frame(b"isol8-base-v2")
    frame(runtime.encode())
    frame(base_image.encode())
    frame(seccomp_label().encode())
    root = context_dir(runtime)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        frame(path.relative_to(root).as_posix().encode())
        frame(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BaseOutcome:
    runtime: str
    image: str
    built: bool
    image_id: str
    warning: str | None = None  # kept out of date: why it could not be checked


def ensure_base_image(
    backend: Backend,
    runtime: str,
    *,
    base_image: str | None = None,
    force: bool = False,
    strict: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> BaseOutcome:
    """Build isol8:<runtime> unless it exists with the expected build hash (or force).

    Offline tolerance: an existing image whose base cannot be had (not local, and the pull
    fails) is kept with a warning; with strict that warning is the BaseImageUnavailable raised.
    Without an image to keep, or with force, the build itself fails loudly."""
    base = base_image or default_base_image(runtime)
    wanted = build_hash(runtime, base)
    tag = image_tag(runtime)
    current = backend.image(tag)
    if current is not None and not force:
        if current.labels.get(L.BUILD_HASH) == wanted:
            return BaseOutcome(runtime, tag, built=False, image_id=current.id)
        problem = _unobtainable(backend, base)
        if problem is not None:
            warning = f"{tag}: could not check its base image {base} ({problem}); kept the existing {current.id[:12]}"
            if strict:
                raise BaseImageUnavailable(["pull", base], None, message=warning)
            return BaseOutcome(runtime, tag, built=False, image_id=current.id, warning=warning)
    progress(f"building {tag} from {base}")
    new_id = backend.build(
        tag=tag,
        context=str(context_dir(runtime)),
        build_args={"BASE_IMAGE": base},
        labels={
            L.MANAGED: "true",
            **({L.RUNTIME: runtime} if runtime != PROXY else {}),
            L.BUILD_HASH: wanted,
            L.BASE_IMAGE: base,
            L.SECCOMP_PROFILE: seccomp_label(),
        },
        on_output=lambda line: progress(
            f"  {line if len(line) <= 200 else line[:200] + ' ...'}"
        ),  # the profile's label
    )
    if current is not None and current.id != new_id:
        _drop_replaced(backend, current.id)
    return BaseOutcome(runtime, tag, built=True, image_id=new_id)


def _unobtainable(backend: Backend, base: str) -> str | None:
    """Why base cannot be had for now (not local, and its registry out of reach), else None. A
    registry that answers that there is no such image is a failure: a typo in baseImages must
    not keep an old image with only a warning."""
    try:
        if backend.image(base) is not None:
            return None
        backend.pull(base)
    except RegistryUnreachable as exc:
        return exc.message
    except (EngineUnavailable, EngineNotFound):
        raise
    except EngineError as exc:  # the registry answered: no such image, denied, a bad reference
        raise BuildFailed(
            exc.argv, exc.returncode, exc.stdout, exc.stderr, message=f"base image {base}: {exc}"
        ) from None
    return None


def _drop_replaced(backend: Backend, image_id: str) -> None:
    """Remove the image a rebuilt tag used to name, unless something still uses it."""
    try:
        failures = backend.remove_images([image_id])
    except ImageNotFound:
        return
    for failure in failures:
        log.debug("kept replaced image %s: %s", image_id, failure.message)


def ensure_base_images(
    backend: Backend,
    runtimes: Iterable[str],
    *,
    base_images: Mapping[str, str],
    force: bool = False,
    strict: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> list[BaseOutcome]:
    return [
        ensure_base_image(
            backend,
            rt,
            base_image=proxy_base(base_images) if rt == PROXY else base_images.get(rt),
            force=force,
            strict=strict,
            progress=progress,
        )
        for rt in runtimes
    ]
