"""Where the configuration comes from, like git's: each level over the one before.

built-in defaults < the user file (~/.isol8/config.*) < the project file (the nearest
isol8.config.* in the working directory or its parents) < ISOL8_CONFIG or --config < ISOL8_*
variables. Mappings merge key by key; lists and scalars replace. Every key remembers its origin.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence

from isol8.errors import ConfigError
from isol8.records import NamedTuple

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

PROJECT_NAMES = ("isol8.config.json", "isol8.config.yaml", "isol8.config.yml")
USER_NAMES = ("config.json", "config.yaml", "config.yml")
BUILT_IN = "built-in"

# The variables that set a config key, each named as the origin of what it sets.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "ISOL8_ENGINE": ("engine",),
    "ISOL8_DEBUG": ("debug",),
    "ISOL8_PIP_INDEX_URL": ("packages", "pipIndexUrl"),
    "ISOL8_NPM_REGISTRY": ("packages", "npmRegistry"),
    "ISOL8_CA_BUNDLE": ("packages", "caBundle"),
}


class Layer(NamedTuple):
    origin: str  # a file's path, or the variable's name
    data: Mapping[str, Any]


class Found(NamedTuple):
    files: tuple[str, ...]  # least specific first
    ignored: tuple[str, ...]  # why a file that was found does not count
    texts: Mapping[str, str] = {}  # the text of a file already read, safely, while it was found


MAX_CONFIG_BYTES = 1 << 20


def _first_file(folder: str, names: Sequence[str]) -> str | None:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _safe_folder(folder: str, uid: int) -> bool:
    """Only you or root can replace what a name in folder points to."""
    st = os.stat(folder)
    return st.st_uid in (uid, 0) and (not st.st_mode & stat.S_IWOTH or bool(st.st_mode & stat.S_ISVTX))


def _read_trusted(path: str, uid: int) -> tuple[str | None, str]:
    """(text, "") of a found config file you can trust, else (None, why not). A file found by walking
    up from the working directory may have been planted (a shared /tmp, a folder someone else owns):
    as git does with a repository, isol8 reads only a file that you or root own, in a folder only
    you or root control, through one descriptor (no name swapped between the check and the read)."""
    try:
        if not _safe_folder(os.path.dirname(path), uid):
            return None, "its folder can be changed by other users"
        link = os.lstat(path)
    except OSError as exc:  # gone since it was found, say
        return None, f"cannot be checked: {exc.strerror}"
    if stat.S_ISLNK(link.st_mode) and link.st_uid != uid:
        return None, f"a symbolic link owned by uid {link.st_uid}, not by you (uid {uid})"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, "gone since it was found"
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_uid not in (uid, 0):
            return None, f"owned by uid {st.st_uid}, not by you (uid {uid})"
        if st.st_uid != uid and st.st_nlink > 1:
            return None, "a hard link to a file that is not yours"
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def _project_file(cwd: str, ignored: list[str]) -> tuple[str, str] | None:
    """(path, text) of the nearest trusted isol8.config.* from cwd up; the untrusted ones passed
    on the way are in `ignored`, each with its reason."""
    if not cwd:
        return None
    folder = os.path.abspath(cwd)
    uid = os.getuid()
    while True:
        path = _first_file(folder, PROJECT_NAMES)
        if path is not None:
            text, why = _read_trusted(path, uid)
            if text is not None:
                return path, text
            ignored.append(f"{path}: {why}")
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def find_files(
    cwd: str | os.PathLike[str],
    home: str | os.PathLike[str],
    env: Mapping[str, str],
    explicit: str | None = None,
    *,
    user: bool = True,
) -> Found:
    """The config files in force, least specific first: user, project, then --config (else ISOL8_CONFIG)."""
    files: list[str] = []
    ignored: list[str] = []
    texts: dict[str, str] = {}
    if user:
        found = _first_file(os.path.join(home, ".isol8"), USER_NAMES)
        if found is not None:  # checked as a project file is: HOME may be another user's (sudo -E)
            text, why = _read_trusted(found, os.getuid())
            if text is None:
                ignored.append(f"{found}: {why}")
            else:
                files.append(found)
                texts[found] = text
    project = _project_file(os.fspath(cwd), ignored)
    if project is not None:
        files.append(project[0])
        texts[project[0]] = project[1]
    chosen = explicit or env.get("ISOL8_CONFIG")
    if chosen:
        path = os.path.expanduser(chosen)
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        files.append(path)
    real = [os.path.realpath(f) for f in files]  # a file named twice counts once, at its highest level
    return Found(tuple(f for i, f in enumerate(files) if real[i] not in real[i + 1 :]), tuple(ignored), texts)


def env_flag(value: str) -> bool:
    """A yes/no variable: anything but empty, 0, false, no or off is yes."""
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def env_layers(env: Mapping[str, str]) -> list[Layer]:
    """One layer per ISOL8_* variable that is set and not empty."""
    layers = []
    for name, keys in ENV_KEYS.items():
        value: object = env.get(name)
        if not value:
            continue
        if name == "ISOL8_DEBUG":
            value = env_flag(str(value))
        data: dict[str, Any] = {keys[-1]: value}
        for key in reversed(keys[:-1]):
            data = {key: data}
        layers.append(Layer(name, data))
    return layers


def copied(value: Any) -> Any:
    """A deep copy of config data (mappings, lists, tuples and scalars: what JSON and YAML give),
    without the copy module (and weakref) on the run path."""
    if isinstance(value, Mapping):
        return {key: copied(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copied(item) for item in value)
    return value


def merge(base: Mapping[str, Any], layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """(base with each layer over it, the origin of every key path a layer set)."""
    data = copied(dict(base))
    origins: dict[str, str] = {}
    for layer in layers:
        _overlay(data, layer.data, layer.origin, origins, "")
    return data, origins


def _overlay(data: dict[str, Any], over: Mapping[str, Any], origin: str, origins: dict[str, str], prefix: str) -> None:
    for key, value in over.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(data.get(key), dict):
            _overlay(data[key], value, origin, origins, f"{path}.")
            continue
        data[key] = copied(value)
        for stale in [p for p in origins if p.startswith(f"{path}.")]:
            del origins[stale]
        origins[path] = origin


def leaves(data: Mapping[str, Any], origins: Mapping[str, str], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(origin, key path, value) of every leaf: a non-mapping, or an empty mapping."""
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += leaves(value, origins, f"{path}.")
        else:
            out.append((origin_of(path, origins), path, value))
    return out


def origin_of(path: str, origins: Mapping[str, str]) -> str:
    while path:
        if path in origins:
            return origins[path]
        path = path.rpartition(".")[0]
    return BUILT_IN
