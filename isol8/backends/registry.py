"""A registry's images, read from isol8's host with skopeo: the tags of a repository and each
image's labels, without pulling it. The engines push and pull; only reading needs this."""

from __future__ import annotations

import json

from isol8.errors import EngineNotFound, EngineTimeout, RegistryUnreadable
from isol8.models import ImageInfo, parse_time
from isol8.process import run_process

TIMEOUT_S = 60.0


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
