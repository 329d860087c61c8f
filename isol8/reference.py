"""Image names isol8 creates (build --tag, prebuiltImages[].tag), checked to the engines' reference grammar.

The grammar is distribution/reference's (what docker and podman parse), without digests:
https://github.com/distribution/reference/blob/main/regexp.go
"""

from __future__ import annotations

import re

NAME_MAX = 255
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_HOST = re.compile(_DOMAIN)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_image_name(ref: str) -> str:
    """ref itself if it is NAME[:TAG] (NAME: lowercase path components joined by '/', optionally led by a
    registry host[:port]); ValueError saying what is accepted otherwise."""
    if not isinstance(ref, str) or not _valid(ref):
        raise ValueError(
            f"not a valid image name: {ref!r} (lowercase name components joined by '/', optionally led by"
            f" host[:port]/, at most {NAME_MAX} characters, then an optional :tag of letters, digits, '_', '.', '-')"
        )
    return ref


def is_tag(value: str) -> bool:
    """Whether value is a tag (the part after NAME:), as the engines accept one."""
    return bool(_TAG.fullmatch(value))


def names_registry(ref: str) -> bool:
    """Whether ref begins with a registry host (as the engines tell one: a dot, a port or localhost):
    a push of a name without one would go to the engine's default registry."""
    host, slash, _ = ref.partition("/")
    return bool(slash) and ("." in host or ":" in host or host == "localhost") and bool(_HOST.fullmatch(host))


def check_repository(value: str) -> str:
    """value itself if it is a registry host[:port] followed by /path (no tag): where pushed images go."""
    if not isinstance(value, str) or not names_registry(value):
        raise ValueError(f"not a registry repository: {value!r} (expected host[:port]/path, such as localhost:5000/a)")
    path = value.partition("/")[2]
    if not _PATH.fullmatch(path) or len(value) > NAME_MAX - 32:
        raise ValueError(f"not a registry repository: {value!r} (its path: lowercase name components joined by '/')")
    return value


def _valid(ref: str) -> bool:
    name, tag = ref, None
    last = ref.rfind(":")
    if last > ref.rfind("/"):  # a colon after the last slash starts the tag; one before it is a port
        name, tag = ref[:last], ref[last + 1 :]
    if tag is not None and not _TAG.fullmatch(tag):
        return False
    if not name or len(name) > NAME_MAX:
        return False
    host, slash, path = name.partition("/")
    # as the engines split it: the first component is a registry host only if it looks like one
    if slash and ("." in host or ":" in host or host == "localhost"):
        return bool(_HOST.fullmatch(host)) and bool(_PATH.fullmatch(path))
    return bool(_PATH.fullmatch(name))
