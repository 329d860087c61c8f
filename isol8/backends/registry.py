"""A registry's images, read from isol8's host with skopeo: the tags of a repository and each
image's labels, without pulling it. The engines push and pull; only reading needs this."""

from __future__ import annotations

import json
import time

from isol8.errors import EngineNotFound, EngineTimeout, RegistryUnreadable
from isol8.log import get_logger
from isol8.models import ImageInfo, parse_time
from isol8.process import run_process
from isol8.reference import is_tag

log = get_logger(__name__)

TIMEOUT_S = 60.0  # one skopeo call
DEADLINE_S = 60.0  # all of a repository's images: then discovery goes on without the rest


def images(repository: str, *, tls_verify: bool = True, limit: int = 200) -> list[ImageInfo]:
    """The images of up to `limit` tags (only tags the engines accept); an image that cannot be
    read is skipped, with a warning (RegistryUnreadable only when the tags cannot be listed)."""
    tags = [t for t in list_tags(repository, tls_verify=tls_verify) if is_tag(t)][:limit]
    found: list[ImageInfo] = []
    deadline = time.monotonic() + DEADLINE_S
    for tag in tags:
        if time.monotonic() > deadline:
            log.warning("%s: %d of its %d tags read within %gs", repository, len(found), len(tags), DEADLINE_S)
            break
        try:
            found.append(inspect(f"{repository}:{tag}", tls_verify=tls_verify))
        except RegistryUnreadable as exc:  # one bad image hides none of the others
            log.warning("%s", exc)
    return found


def skopeo_argv(verb: str, ref: str, *, tls_verify: bool) -> list[str]:
    return ["skopeo", verb, *([] if tls_verify else ["--tls-verify=false"]), f"docker://{ref}"]


def list_tags(repository: str, *, tls_verify: bool = True) -> list[str]:
    """The repository's tags; none if nothing was ever pushed to it."""
    data = _skopeo("list-tags", repository, tls_verify)
    return [t for t in data.get("Tags") or [] if isinstance(t, str)]


def inspect(ref: str, *, tls_verify: bool = True) -> ImageInfo:
    """An image's labels and creation time, as the registry has them; its id is its digest."""
    data = _skopeo("inspect", ref, tls_verify)
    labels = {str(k): str(v) for k, v in (data.get("Labels") or {}).items()}
    return ImageInfo(str(data.get("Digest") or ref), (ref,), labels, parse_time(data.get("Created")))


def _skopeo(verb: str, ref: str, tls_verify: bool) -> dict:
    argv = skopeo_argv(verb, ref, tls_verify=tls_verify)
    try:
        done = run_process(argv, timeout=TIMEOUT_S)
    except EngineNotFound:
        raise RegistryUnreadable("skopeo is not installed: the registry's images are not looked for") from None
    except EngineTimeout:
        raise RegistryUnreadable(f"skopeo {verb} {ref} did not answer within {TIMEOUT_S:g}s") from None
    if done.returncode != 0:
        if verb == "list-tags" and ("name unknown" in done.stderr or "not known to registry" in done.stderr):
            return {"Tags": []}  # nothing pushed there yet
        said = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise RegistryUnreadable(f"skopeo {verb} {ref}: {said[0]}")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise RegistryUnreadable(f"skopeo {verb} {ref}: its output is not JSON") from None
    return data if isinstance(data, dict) else {}
