"""The config schema: what each key may hold, checked with a message that names the file and the key."""

from __future__ import annotations

import re
from collections.abc import Callable

from isol8 import units
from isol8.backends import ENGINES, KINDS
from isol8.backends.engine.dialect import ENDPOINT_KEYS
from isol8.defaults import INSTALL_STRATEGIES
from isol8.errors import ConfigError
from isol8.runtimes import NAMES as RUNTIME_NAMES

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

# ---- schema -------------------------------------------------------------------------------------
# A schema node is a dict (an object with known keys), or a checker: value -> normalised value,
# raising ValueError with a short reason.

Checker = Callable[..., object]


def _type(kind: type | tuple[type, ...], name: str) -> Checker:
    def check(value: Any) -> Any:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ValueError(f"expected {name}, got a boolean")
        if not isinstance(value, kind):
            raise ValueError(f"expected {name}, got {type(value).__name__}")
        return value

    return check


def _positive_int(value: Any) -> Any:
    _type(int, "an integer")(value)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _nullable(checker: Checker) -> Checker:
    """null means: the built-in default (so `isol8 config --json` output is itself a valid config)."""

    def check(value: Any) -> Any:
        return None if value is None else checker(value)

    return check


def _choice(*options: str) -> Checker:
    def check(value: Any) -> Any:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value

    return check


def _list_of(item: Any) -> Checker:
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return value

    check.item = item  # type: ignore[attr-defined]
    return check


def _map_of(keys: Checker, item: Checker) -> Checker:
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {type(value).__name__}")
        return value

    check.keys = keys  # type: ignore[attr-defined]
    check.item = item  # type: ignore[attr-defined]
    return check


def _image_name(value: Any) -> Any:
    from isol8.reference import check_image_name  # its grammar is compiled only for a config that has tags

    return check_image_name(value)


def _repository(value: Any) -> Any:
    from isol8.reference import check_repository

    return check_repository(value)


def _push(value: Any) -> Any:
    from isol8.reference import names_registry

    if isinstance(value, bool) or (_image_name(value) and names_registry(value)):
        return value
    raise ValueError(f"expected true, false or HOST[:PORT]/NAME[:TAG] (a registry host first), got {value!r}")


def _kube_name(*, label: bool) -> Checker:
    """A Kubernetes object's name: a DNS label (a namespace) or subdomain (a RuntimeClass, a Secret)."""

    def check(value: Any) -> Any:
        import re

        _STR(value)
        part = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
        if len(value) > (63 if label else 253) or not re.fullmatch(part if label else rf"{part}(\.{part})*", value):
            dots = "" if label else ", '.'"
            raise ValueError(f"expected a Kubernetes name (a-z, 0-9, '-'{dots}), got {value!r}")
        return value

    return check


def _host(value: Any) -> Any:
    from isol8.core.egress import InvalidHost, host_regex

    _STR(value)
    try:
        host_regex(value)
    except InvalidHost as exc:
        raise ValueError(str(exc)) from None
    return value


def _fleet(value: Any) -> Any:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        raise ValueError("expected a fleet name: 1-64 letters, digits, '.', '_' or '-'")
    return value


_STR = _type(str, "a string")
_BOOL = _type(bool, "true or false")
_INT = _positive_int

# Each limit of a run: its config (and wire) key -> the RunDefaults field and the parser that
# checks it. The config's `defaults`, the CLI's flags and a server request's options all go
# through this one table (isol8.core.plan), so a limit means the same everywhere.
RUN_LIMITS: dict[str, tuple[str, Callable[[object], Any]]] = {
    "timeoutMs": ("timeout_ms", units.duration_ms),
    "memoryLimit": ("memory", units.memory),
    "cpuLimit": ("cpus", units.cpus),
    "sandboxSize": ("sandbox_size", units.tmpfs_size),
    "tmpSize": ("tmp_size", units.tmpfs_size),
    "shmSize": ("shm_size", units.tmpfs_size),
    "pidsLimit": ("pids_limit", units.pids),
    "maxOutputSize": ("max_output", units.output_size),
}


SCHEMA: dict[str, Any] = {
    "$schema": _STR,
    "engine": _nullable(_choice(*ENGINES)),
    "debug": _BOOL,
    "maxConcurrent": _INT,
    "defaults": {
        **{key: parse for key, (_, parse) in RUN_LIMITS.items()},
        "network": _choice("none", "host", "filtered"),
    },
    "network": {
        "whitelist": _list_of(_host),
        "blacklist": _list_of(_host),
        "allowPrivate": _list_of(_STR),
        "hosts": _map_of(_STR, _STR),
    },
    "outputFiles": {"maxFileSize": units.output_size, "maxTotalSize": units.output_size},
    "security": {"seccompProfile": _nullable(_STR)},
    "backend": {
        **{key: _nullable(_STR) for key in ENDPOINT_KEYS},
        # kind kubernetes: context is kubectl's, and these are its own (isol8/backends/kubernetes)
        "kind": _nullable(_choice(*KINDS)),
        "namespace": _nullable(_kube_name(label=True)),
        "runtimeClassName": _nullable(_kube_name(label=False)),
        "imagePullSecrets": _list_of(_kube_name(label=False)),
        "seccompLocalhost": _nullable(_STR),
    },
    "packages": {
        "pipIndexUrl": _nullable(_STR),
        "npmRegistry": _nullable(_STR),
        "caBundle": _nullable(_STR),
        "strategy": _choice(*INSTALL_STRATEGIES),
        "installTimeoutMs": units.duration_ms,
    },
    "server": {
        "allowHostNetwork": _BOOL,
        "allowedHosts": _list_of(_host),
        "allowImages": _BOOL,
        "queueTimeoutMs": units.duration_ms,
        "maxBodyBytes": _INT,
        "poolSize": _type(int, "an integer"),
        "sessionIdleMs": units.duration_ms,
        "fleet": _nullable(_fleet),
        "drainMs": _nullable(units.duration_ms),
    },
    "registry": {"repository": _nullable(_repository), "tlsVerify": _BOOL},
    "baseImages": _map_of(_choice(*RUNTIME_NAMES, "proxy"), _STR),
    "prebuiltImages": _list_of(
        {
            "tag": _image_name,
            "runtime": _choice(*RUNTIME_NAMES),
            "installPackages": _list_of(_STR),
            "setupScript": _STR,
            "push": _push,
        }
    ),
}
REQUIRED = {"prebuiltImages[]": ("tag", "runtime")}


def validate(node: Any, value: Any, path: str, source: str) -> None:
    def fail(reason: str) -> ConfigError:
        return ConfigError(f"{source}: {path or 'top level'}: {reason}")

    if isinstance(node, dict):
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {type(value).__name__}")
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in node:
                known = ", ".join(k for k in node if not k.startswith("$"))
                raise ConfigError(f"{source}: {where}: unknown key (known here: {known})")
            validate(node[key], sub, where, source)
        kind = re.sub(r"\[\d+\]", "[]", path) if "[" in path else path  # prebuiltImages[0] -> prebuiltImages[]
        for key in REQUIRED.get(kind, ()):
            if key not in value:
                raise fail(f"missing required key {key!r}")
        return
    try:
        node(value)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if hasattr(node, "keys") and isinstance(value, dict):
        for key, sub in value.items():
            try:
                node.keys(key)
            except ValueError as exc:
                raise ConfigError(f"{source}: {path}.{key}: {exc}") from None
            validate(node.item, sub, f"{path}.{key}", source)
    elif hasattr(node, "item") and isinstance(value, list):
        for i, sub in enumerate(value):
            validate(node.item, sub, f"{path}[{i}]", source)


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """Parse and validate. `.json` files go through the stdlib json module (as safe as PyYAML's safe
    loader, and importing PyYAML would cost every `isol8 run` ~15 ms); everything else through
    yaml.safe_load, which also reads JSON. Text parsed before comes from isol8.config.parsed."""
    from isol8.config import parsed

    data = parsed.kept(source, text)
    fresh = data is None
    if data is None:
        data = _parse(text, source)
    validate(SCHEMA, data, "", source)  # kept data too: by this isol8's schema, whichever isol8 kept it
    if fresh:
        parsed.keep(source, text, data)
    return data


def _parse(text: str, source: str) -> dict[str, Any]:
    if source.endswith(".json"):
        import json

        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    else:
        import yaml  # imported here: `isol8 --help` and runs without a YAML config never pay for it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return {} if data is None else data
