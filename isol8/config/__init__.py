"""The configuration: its layers (isol8.config.layers) merged over the built-in defaults, checked
against the schema (isol8.config.schema), and read through typed sections."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property

from isol8 import units
from isol8.config.layers import Layer, copied, env_layers, find_files, merge
from isol8.config.schema import RUN_LIMITS, SCHEMA, parse_config_text, validate
from isol8.defaults import DEFAULTS
from isol8.errors import ConfigError, UsageError
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from isol8.core.outputs import OutputLimits


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
    allowed_hosts: tuple[str, ...]  # the hosts a filtered request may ask for, at most
    queue_timeout_s: float
    max_body_bytes: int
    pool_size: int
    session_idle_s: float
    max_concurrent: int
    fleet: str | None = None  # the name replicas sharing their sessions have in common
    drain_s: float = 0.0

    @classmethod
    def from_data(cls, data: Mapping[str, Any], max_concurrent: object) -> ServerSettings:
        return cls(
            allow_host_network=bool(data["allowHostNetwork"]),
            allow_images=bool(data["allowImages"]),
            allowed_hosts=tuple(data["allowedHosts"]),
            queue_timeout_s=units.duration_ms(data["queueTimeoutMs"]) / 1000,
            max_body_bytes=int(data["maxBodyBytes"]),
            pool_size=int(data["poolSize"]),
            session_idle_s=units.duration_ms(data["sessionIdleMs"]) / 1000,
            max_concurrent=int(str(max_concurrent)),
            fleet=data.get("fleet"),
            drain_s=units.duration_ms(data["drainMs"]) / 1000 if data.get("drainMs") is not None else 0.0,
        )


class NetworkSettings(NamedTuple):
    """`network`: what a filtered run reaches unless a flag or a request says otherwise.

    whitelist/blacklist: host patterns (isol8.core.egress.host_regex); allow_private: address
    ranges the proxy may connect to after all; hosts: name -> address for the proxy's resolver."""

    whitelist: tuple[str, ...] = ()
    blacklist: tuple[str, ...] = ()
    allow_private: tuple[str, ...] = ()
    hosts: Mapping[str, str] = {}


CA_KEYWORDS = ("auto", "system", "none")
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")


class PackageSettings(NamedTuple):
    """`packages`: where installers fetch from, and the CA bundle builds trust.

    ca_bundle: "auto" (the host's bundle when it has one: it adds only what the host already
    trusts, such as a TLS-intercepting proxy's CA), "system" (the host's, which must exist),
    a file, or "none"/None (the installers' own roots only)."""

    pip_index_url: str | None = None
    npm_registry: str | None = None
    ca_bundle: str | None = None
    strategy: str = "image"  # INSTALL_STRATEGIES: a cached image with the packages, or installs into the sandbox
    install_timeout_ms: int = 300_000  # a run-time install's own time limit (the run's is the program's)

    @property
    def install_timeout_s(self) -> int:
        return -(-self.install_timeout_ms // 1000)

    def ca_file(self) -> Path | None:
        from pathlib import Path  # only for builds: the run path never needs pathlib

        if self.ca_bundle in (None, "", "none"):
            return None
        if self.ca_bundle in ("auto", "system"):
            for candidate in SYSTEM_CA_BUNDLES:
                if os.path.isfile(candidate):
                    return _certificates_only(Path(candidate))
            if self.ca_bundle == "auto":
                return None
            raise UsageError("caBundle is 'system' but no CA bundle was found on this host")
        path = Path(self.ca_bundle).expanduser()
        if not path.is_file():
            raise UsageError(f"caBundle: no such file: {path}")
        return _certificates_only(path)


def _certificates_only(path: Path) -> Path:
    """path, if it is a PEM bundle of certificates and nothing else: it goes into image layers."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"caBundle: cannot read {path} as a PEM bundle: {exc}") from None
    kinds = {line[11:-5] for line in text.splitlines() if line.startswith("-----BEGIN ") and line.endswith("-----")}
    if kinds != {"CERTIFICATE"} and kinds != {"CERTIFICATE", "TRUSTED CERTIFICATE"}:
        found = ", ".join(sorted(kinds)) or "no PEM block"
        raise UsageError(f"caBundle: {path} must hold certificates only (found: {found})")
    return path


KUBE_KEYS = ("namespace", "runtimeClassName", "imagePullSecrets", "seccompLocalhost")


class BackendSettings(NamedTuple):
    """What runs the containers: `engine` (else ISOL8_ENGINE, else auto-detected), the seccomp
    profile, and the `backend` section's endpoint keys (isol8.backends.open_backend)."""

    engine: str | None
    seccomp_profile: str | None
    endpoint: Mapping[str, str | None] = {}
    kind: str | None = None  # backend.kind: engine (the default) or kubernetes
    kube: Mapping[str, Any] = {}  # kind kubernetes: the section's keys (context, namespace...)


class PrebuiltImage(NamedTuple):
    tag: str
    runtime: str
    install_packages: tuple[str, ...] = ()
    setup_script: str | None = None
    push: str | bool = False  # a reference to push to, or True: the registry's repository


class RegistrySettings(NamedTuple):
    """`registry`: the repository a fleet of engines shares custom images through (isol8 build
    --push, prebuiltImages[].push; run --install looks there before it builds)."""

    repository: str | None = None
    tls_verify: bool = True


class Config:
    """The merged configuration (`data`, as `isol8 config` shows it, never changed) and its typed sections.

    sources: the files read, least specific first; origins: which file or variable set each key path
    (a key not in it is built-in); ignored: files found but not used, each with the reason."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        sources: tuple[str, ...] = (),
        origins: Mapping[str, str] | None = None,
        ignored: tuple[str, ...] = (),
    ) -> None:
        self.data: Mapping[str, Any] = copied(DEFAULTS) if data is None else data
        self.sources = sources
        self.origins: Mapping[str, str] = origins or {}
        self.ignored = ignored

    @property
    def source(self) -> str | None:
        """The most specific file read."""
        return self.sources[-1] if self.sources else None

    def __repr__(self) -> str:
        return f"Config(sources={self.sources!r})"

    @cached_property
    def run(self) -> RunDefaults:
        return RunDefaults.from_data(self.data["defaults"])

    @cached_property
    def server(self) -> ServerSettings:
        return ServerSettings.from_data(self.data["server"], self.data["maxConcurrent"])

    @cached_property
    def network(self) -> NetworkSettings:
        section = self.data["network"]
        return NetworkSettings(
            tuple(section.get("whitelist") or ()),
            tuple(section.get("blacklist") or ()),
            tuple(section.get("allowPrivate") or ()),
            dict(section.get("hosts") or {}),
        )

    @cached_property
    def output_files(self) -> OutputLimits:
        from isol8.core.outputs import OutputLimits

        section = self.data["outputFiles"]
        return OutputLimits(units.output_size(section["maxFileSize"]), units.output_size(section["maxTotalSize"]))

    @cached_property
    def backend(self) -> BackendSettings:
        engine = self.data.get("engine")
        section = dict(self.data.get("backend") or {})
        kind = section.pop("kind", None)
        kube = {key: section.pop(key) for key in KUBE_KEYS if key in section}
        if kind == "kubernetes":  # its context is kubectl's
            kube.update({key: section.pop(key) for key in ("context",) if key in section})
        seccomp = self.data["security"].get("seccompProfile")
        return BackendSettings(str(engine) if engine else None, seccomp, section, kind, kube)

    @property
    def debug(self) -> bool:
        return bool(self.data.get("debug"))

    @property
    def base_images(self) -> Mapping[str, str]:
        return self.data["baseImages"]

    @cached_property
    def packages(self) -> PackageSettings:
        section = self.data["packages"]
        return PackageSettings(
            section.get("pipIndexUrl"),
            section.get("npmRegistry"),
            section.get("caBundle") or DEFAULTS["packages"]["caBundle"],  # null: the built-in default
            section.get("strategy") or DEFAULTS["packages"]["strategy"],
            units.duration_ms(section.get("installTimeoutMs") or DEFAULTS["packages"]["installTimeoutMs"]),
        )

    @cached_property
    def registry(self) -> RegistrySettings:
        section = self.data.get("registry") or {}
        return RegistrySettings(section.get("repository"), section.get("tlsVerify", True) is not False)

    @property
    def prebuilt_images(self) -> tuple[PrebuiltImage, ...]:
        return tuple(
            PrebuiltImage(
                tag=entry["tag"],
                runtime=entry["runtime"],
                install_packages=tuple(entry.get("installPackages") or ()),
                setup_script=entry.get("setupScript"),
                push=entry.get("push") or False,
            )
            for entry in self.data["prebuiltImages"]
        )


def read_layer(path: str, text: str | None = None) -> Layer:
    """A config file as a layer; `text` if it was already read. Relative file paths in it are
    relative to its folder, wherever isol8 runs from."""
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    data = parse_config_text(text, path)
    folder = os.path.dirname(os.path.abspath(path))
    for section, key in (("security", "seccompProfile"), ("packages", "caBundle")):
        value = (data.get(section) or {}).get(key)
        if isinstance(value, str) and value not in CA_KEYWORDS and not os.path.isabs(os.path.expanduser(value)):
            data[section][key] = os.path.join(folder, value)
    for key in ("tlsCertPath", "identity"):  # handed to the engine's client, which expands no ~
        value = (data.get("backend") or {}).get(key)
        if isinstance(value, str) and value:
            data["backend"][key] = os.path.join(folder, os.path.expanduser(value))
    return Layer(path, data)


def _working_directory() -> str:
    """The working directory; "" when it was removed (then there is no project file)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return ""


def load_config(
    explicit: str | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    user: bool = True,
) -> Config:
    """The configuration in force: the files (user unless not `user`, project, `explicit` or
    ISOL8_CONFIG) and the ISOL8_* variables, each over the one before, over the built-in defaults."""
    env = os.environ if env is None else env
    found = find_files(cwd or _working_directory(), home or os.path.expanduser("~"), env, explicit, user=user)
    layers = [read_layer(path, found.texts.get(path)) for path in found.files]
    for layer in env_layers(env):
        validate(SCHEMA, layer.data, "", layer.origin)
        layers.append(layer)
    data, origins = merge(DEFAULTS, layers)
    return Config(data, found.files, origins, found.ignored)


__all__ = [
    "DEFAULTS",
    "RUN_LIMITS",
    "BackendSettings",
    "Config",
    "PackageSettings",
    "PrebuiltImage",
    "RegistrySettings",
    "RunDefaults",
    "ServerSettings",
    "load_config",
    "parse_config_text",
]
