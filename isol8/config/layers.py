"""Where the configuration comes from, like git's: each level over the one before.

built-in defaults < the user file (~/.isol8/config.*) < the project file (the nearest
isol8.config.* in the working directory or its parents) < ISOL8_CONFIG or --config < ISOL8_*
variables. Mappings merge key by key; lists and scalars replace. Every key remembers its origin.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from isol8.errors import ConfigError

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


def _first_file(folder: str, names: Sequence[str]) -> str | None:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _project_file(cwd: str, ignored: list[str]) -> str | None:
    """The nearest isol8.config.* from cwd up. One owned by another user (a planted /tmp/isol8.config.json)
    is skipped with a reason, as git skips a repository it does not trust."""
    folder = os.path.abspath(cwd)
    uid = os.getuid()
    while True:
        path = _first_file(folder, PROJECT_NAMES)
        if path is not None:
            owner = os.stat(path).st_uid
            if owner in (uid, 0):
                return path
            ignored.append(f"{path}: owned by uid {owner}, not by you (uid {uid}); pass it with --config to use it")
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
    if user:
        found = _first_file(os.path.join(home, ".isol8"), USER_NAMES)
        files += [found] if found else []
    project = _project_file(os.fspath(cwd), ignored)
    files += [project] if project else []
    chosen = explicit or env.get("ISOL8_CONFIG")
    if chosen:
        path = os.path.expanduser(chosen)
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        files.append(path)
    real = [os.path.realpath(f) for f in files]  # a file named twice counts once, at its highest level
    return Found(tuple(f for i, f in enumerate(files) if real[i] not in real[i + 1 :]), tuple(ignored))


def env_layers(env: Mapping[str, str]) -> list[Layer]:
    """One layer per ISOL8_* variable that is set and not empty."""
    layers = []
    for name, keys in ENV_KEYS.items():
        value: object = env.get(name)
        if not value:
            continue
        if name == "ISOL8_DEBUG":
            value = value != "0"
        data: dict[str, Any] = {keys[-1]: value}
        for key in reversed(keys[:-1]):
            data = {key: data}
        layers.append(Layer(name, data))
    return layers


def merge(base: Mapping[str, Any], layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """(base with each layer over it, the origin of every key path a layer set)."""
    data = copy.deepcopy(dict(base))
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
        data[key] = copy.deepcopy(value)
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
