"""The config file: found, parsed with PyYAML's safe loader (JSON is YAML), validated, merged over defaults."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

from isol8 import units
from isol8.backends import ENGINES
from isol8.defaults import DEFAULTS
from isol8.errors import ConfigError, UsageError
from isol8.runtimes import NAMES as RUNTIME_NAMES

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

SEARCH_LOCAL = ("isol8.config.json", "isol8.config.yaml", "isol8.config.yml")
SEARCH_HOME = ("config.json", "config.yaml", "config.yml")

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
    "defaults": {**{key: parse for key, (_, parse) in RUN_LIMITS.items()}, "network": _choice("none", "host")},
    "network": {"whitelist": _list_of(_STR), "blacklist": _list_of(_STR)},
    "security": {"seccompProfile": _nullable(_STR)},
    "packages": {"pipIndexUrl": _nullable(_STR), "npmRegistry": _nullable(_STR), "caBundle": _nullable(_STR)},
    "server": {
        "allowHostNetwork": _BOOL,
        "allowImages": _BOOL,
        "queueTimeoutMs": units.duration_ms,
        "maxBodyBytes": _INT,
        "poolSize": _type(int, "an integer"),
        "sessionIdleMs": units.duration_ms,
    },
    "baseImages": _map_of(_choice(*RUNTIME_NAMES), _STR),
    "prebuiltImages": _list_of(
        {
            "tag": _image_name,
            "runtime": _choice(*RUNTIME_NAMES),
            "installPackages": _list_of(_STR),
            "setupScript": _STR,
        }
    ),
}
REQUIRED = {"prebuiltImages[]": ("tag", "runtime")}


def _validate(node: Any, value: Any, path: str, source: str) -> None:
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
            _validate(node[key], sub, where, source)
        for key in REQUIRED.get(re.sub(r"\[\d+\]", "[]", path), ()):
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
            _validate(node.item, sub, f"{path}.{key}", source)
    elif hasattr(node, "item") and isinstance(value, list):
        for i, sub in enumerate(value):
            _validate(node.item, sub, f"{path}[{i}]", source)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merge key by key; lists and scalars are replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class RunDefaults(NamedTuple):
    """`defaults`: each run's limits and network unless a flag or a request says otherwise."""

    timeout_ms: int
    memory: int
    cpus: float
    sandbox_size: int
    tmp_size: int
    shm_size: int
    pids_limit: int
    max_output: int
    network: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RunDefaults:
        parsed = {name: parse(data[key]) for key, (name, parse) in RUN_LIMITS.items()}
        return cls(**parsed, network=str(data["network"]))


class ServerSettings(NamedTuple):
    """`server` and `maxConcurrent`: what `isol8 serve` allows and how much it runs at once."""

    allow_host_network: bool
    allow_images: bool
    queue_timeout_s: float
    max_body_bytes: int
    pool_size: int
    session_idle_s: float
    max_concurrent: int

    @classmethod
    def from_data(cls, data: Mapping[str, Any], max_concurrent: object) -> ServerSettings:
        return cls(
            allow_host_network=bool(data["allowHostNetwork"]),
            allow_images=bool(data["allowImages"]),
            queue_timeout_s=units.duration_ms(data["queueTimeoutMs"]) / 1000,
            max_body_bytes=int(data["maxBodyBytes"]),
            pool_size=int(data["poolSize"]),
            session_idle_s=units.duration_ms(data["sessionIdleMs"]) / 1000,
            max_concurrent=int(str(max_concurrent)),
        )


SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")


class PackageSettings(NamedTuple):
    """`packages`: where installers fetch from; nothing is injected unless set (or its ISOL8_* variable)."""

    pip_index_url: str | None = None
    npm_registry: str | None = None
    ca_bundle: str | None = None  # a file, or "system" for the host's bundle

    def ca_file(self) -> Path | None:
        from pathlib import Path  # only for builds: the run path never needs pathlib

        if not self.ca_bundle:
            return None
        if self.ca_bundle == "system":
            for candidate in SYSTEM_CA_BUNDLES:
                if os.path.isfile(candidate):
                    return Path(candidate)
            raise UsageError("caBundle is 'system' but no CA bundle was found on this host")
        path = Path(self.ca_bundle).expanduser()
        if not path.is_file():
            raise UsageError(f"caBundle: no such file: {path}")
        return path


class BackendSettings(NamedTuple):
    """What runs the containers: `engine` (else ISOL8_ENGINE, else auto-detected) and the seccomp profile."""

    engine: str | None
    seccomp_profile: str | None


class PrebuiltImage(NamedTuple):
    tag: str
    runtime: str
    install_packages: tuple[str, ...] = ()
    setup_script: str | None = None


class Config:
    """The merged config file (`data`, as `isol8 config` shows it, never changed) and its typed sections."""

    def __init__(self, data: Mapping[str, Any] | None = None, source: str | None = None) -> None:
        self.data: Mapping[str, Any] = copy.deepcopy(DEFAULTS) if data is None else data
        self.source = source

    def __repr__(self) -> str:
        return f"Config(source={self.source!r})"

    @cached_property
    def run(self) -> RunDefaults:
        return RunDefaults.from_data(self.data["defaults"])

    @cached_property
    def server(self) -> ServerSettings:
        return ServerSettings.from_data(self.data["server"], self.data["maxConcurrent"])

    @cached_property
    def backend(self) -> BackendSettings:
        engine = self.data.get("engine")
        return BackendSettings(str(engine) if engine else None, self.data["security"].get("seccompProfile"))

    @property
    def debug(self) -> bool:
        return bool(self.data.get("debug"))

    @property
    def base_images(self) -> Mapping[str, str]:
        return self.data["baseImages"]

    def packages(self, env: Mapping[str, str]) -> PackageSettings:
        """packages.* from the file, each overridden by its ISOL8_* variable when that is set."""
        section = self.data["packages"]
        return PackageSettings(
            *(
                env.get(var) or section.get(key)
                for key, var in (
                    ("pipIndexUrl", "ISOL8_PIP_INDEX_URL"),
                    ("npmRegistry", "ISOL8_NPM_REGISTRY"),
                    ("caBundle", "ISOL8_CA_BUNDLE"),
                )
            )
        )

    @property
    def prebuilt_images(self) -> tuple[PrebuiltImage, ...]:
        return tuple(
            PrebuiltImage(
                tag=entry["tag"],
                runtime=entry["runtime"],
                install_packages=tuple(entry.get("installPackages") or ()),
                setup_script=entry.get("setupScript"),
            )
            for entry in self.data["prebuiltImages"]
        )


def find_config(
    cwd: str | os.PathLike[str], home: str | os.PathLike[str], env: Mapping[str, str], explicit: str | None = None
) -> str | None:
    """--config, else ISOL8_CONFIG, else ./isol8.config.{json,yaml,yml}, else ~/.isol8/config.{json,yaml,yml}."""
    chosen = explicit or env.get("ISOL8_CONFIG")
    if chosen:
        path = os.path.expanduser(chosen)
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        return path
    for folder, names in ((os.fspath(cwd), SEARCH_LOCAL), (os.path.join(home, ".isol8"), SEARCH_HOME)):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """Parse and validate. `.json` files go through the stdlib json module (as safe as PyYAML's safe
    loader, and importing PyYAML would cost every `isol8 run` ~15 ms); everything else through
    yaml.safe_load, which also reads JSON."""
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
    if data is None:
        return {}
    _validate(SCHEMA, data, "", source)
    return data


def load_config(
    explicit: str | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    env = os.environ if env is None else env
    path = find_config(cwd or os.getcwd(), home or os.path.expanduser("~"), env, explicit)
    if path is None:
        return Config()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return Config(_merge(DEFAULTS, parse_config_text(text, path)), path)
