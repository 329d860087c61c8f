"""One handler per sub-command: argparse Namespace -> library calls -> the injected streams."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from functools import cached_property

from isol8 import runtimes
from isol8.backends.engine.backend import Engine, select_dialect
from isol8.config import Config, load_config
from isol8.errors import UsageError
from isol8.status import ExitStatus

TYPE_CHECKING = False  # typing costs ~8 ms to import: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO, TypeVar

    T = TypeVar("T")


@dataclass
class App:
    args: argparse.Namespace
    stdout: TextIO
    stderr: TextIO
    debug: bool = False
    _cache: dict[str, object] = field(default_factory=dict)

    @cached_property
    def config(self) -> Config:
        return load_config(self.args.config)

    @cached_property
    def engine(self) -> Engine:
        import os

        return Engine(select_dialect(self.args.engine or os.environ.get("ISOL8_ENGINE") or self.config.engine))

    def progress(self, line: str) -> None:
        self.stderr.write(f"isol8: {line}\n")
        self.stderr.flush()

    def say(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()


def parse_assignments(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{what}: expected KEY=VALUE, got {value!r}")
        out[key] = rest
    return out


def cmd_setup(app: App) -> int:
    from isol8.core.images import ensure_base_images

    base_images = dict(app.config.base_images)
    overrides = parse_assignments(app.args.base_image, "--base-image")
    for runtime in overrides:
        runtimes.get(runtime)
    base_images.update(overrides)
    chosen = list(dict.fromkeys(app.args.runtime or runtimes.NAMES))
    app.engine.version()
    for outcome in ensure_base_images(
        app.engine, chosen, base_images=base_images, force=app.args.force, progress=app.progress
    ):
        state = "built" if outcome.built else "up to date"
        app.say(f"{outcome.image}: {state} ({outcome.image_id[:12]})")
    build_prebuilt_images(app, base_images, only=chosen if app.args.runtime else None)
    return ExitStatus.OK


def build_prebuilt_images(app: App, base_images: dict[str, str], only: list[str] | None = None) -> None:
    """The config's prebuiltImages, content-addressed: an unchanged entry is skipped, a changed one rebuilt."""
    from isol8.core.custom import ImageDefinition, RegistrySettings, build_image
    from isol8.ecosystems import parse_specs

    registry = registry_settings(app)
    assert isinstance(registry, RegistrySettings)
    for entry in app.config.prebuilt_images:
        if only is not None and entry.runtime not in only:
            continue
        _check_tag(entry.tag, "prebuiltImages[].tag")
        runtime = runtimes.get(entry.runtime)
        defn = ImageDefinition(runtime, parse_specs(runtime, entry.install_packages), entry.setup_script)
        outcome = build_image(
            app.engine,
            defn,
            entry.tag,
            registry=registry,
            base_images=base_images,
            force=getattr(app.args, "force", False),
            progress=app.progress,
        )
        app.say(f"{entry.tag}: {'built' if outcome.built else 'up to date'} ({outcome.image_id[:12]})")


def cmd_config(app: App) -> int:
    config = app.config
    source = str(config.source) if config.source else None
    if app.args.json:
        app.say(json.dumps({"source": source, "config": config.data}, indent=2))
        return ExitStatus.OK
    app.say(f"source: {source or 'built-in defaults (no config file found)'}")
    import yaml

    app.stdout.write(yaml.safe_dump(dict(config.data), sort_keys=False, default_flow_style=False))
    return ExitStatus.OK


def _read_code(app: App) -> tuple[bytes | None, str | None, str | None]:
    """(code, cmd, filename) from FILE, -e, --cmd or standard input."""
    import sys

    args = app.args
    given = [name for name, value in (("FILE", args.file), ("-e", args.eval), ("--cmd", args.cmd)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"give only one of FILE, -e and --cmd (got {' and '.join(given)})")
    if args.cmd is not None:
        return None, args.cmd, None
    if args.eval is not None:
        return args.eval.encode(), None, None
    if args.file is not None:
        try:
            with open(args.file, "rb") as f:
                return f.read(), None, args.file
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no code given: pass FILE, -e CODE, --cmd COMMAND, or pipe code on standard input")
    return sys.stdin.buffer.read(), None, None


def _option(app: App, flag_value: object, key: str) -> object:
    return flag_value if flag_value is not None else app.config.defaults[key]


def _limit(app: App, parse: Callable[[object], T], flag_value: str | None, flag: str, key: str) -> T:
    """The flag's value parsed by isol8.units (a UsageError naming the flag), else the config's (validated on load)."""
    if flag_value is None:
        return parse(app.config.defaults[key])
    try:
        return parse(flag_value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def build_request(app: App) -> object:
    import os
    import sys
    from pathlib import Path

    from isol8 import units
    from isol8.core.runner import RunRequest, stdin_chunks
    from isol8.core.sandbox import SandboxPolicy
    from isol8.frontends.cli.run import parse_secrets

    args = app.args
    code, cmd, filename = _read_code(app)
    if args.runtime:
        runtime = runtimes.get(args.runtime)
    elif filename:
        runtime = runtimes.detect(filename)
    else:
        runtime = runtimes.get("bash" if cmd is not None else "python")
    timeout_ms = _limit(app, units.duration_ms, args.timeout, "--timeout", "timeoutMs")
    max_output = _limit(app, units.output_size, args.max_output, "--max-output", "maxOutputSize")
    policy = SandboxPolicy(
        memory=_limit(app, units.memory, args.memory, "--memory", "memoryLimit"),
        cpus=_limit(app, units.cpus, args.cpu, "--cpu", "cpuLimit"),
        pids_limit=_limit(app, units.pids, args.pids_limit, "--pids-limit", "pidsLimit"),
        network=str(_option(app, args.net, "network")),
        sandbox_size=_limit(app, units.tmpfs_size, args.sandbox_size, "--sandbox-size", "sandboxSize"),
        tmp_size=_limit(app, units.tmpfs_size, args.tmp_size, "--tmp-size", "tmpSize"),
        shm_size=_limit(app, units.tmpfs_size, args.shm_size, "--shm-size", "shmSize"),
        seccomp_profile=app.config.seccomp_profile,
    )
    files_dir = None
    if args.files is not None:
        files_dir = Path(args.files)
        if not files_dir.is_dir():
            raise UsageError(f"--files: not a directory: {args.files}")
    if args.stdin is not None:
        user_stdin: object = [args.stdin.encode()]
    elif code is not None and (args.file is not None or args.eval is not None) or cmd is not None:
        user_stdin = stdin_chunks() if sys.stdin is not None and not sys.stdin.isatty() else []
    else:
        user_stdin = []
    return RunRequest(
        runtime=runtime,
        code=code,
        cmd=cmd,
        filename=filename,
        files_dir=files_dir,
        stdin=user_stdin,  # type: ignore[arg-type]
        env=parse_assignments(args.env, "--env"),
        secrets=parse_secrets(args.secret, args.secret_file, os.environ),
        workdir=args.workdir or "/sandbox",
        image=args.image,
        timeout_ms=timeout_ms,
        max_output=max_output,
        policy=policy,
        persist=args.persist,
    )


def cmd_run(app: App) -> int:
    from isol8.frontends.cli.run import run

    return run(app)


def cmd_cleanup(app: App) -> int:
    import sys

    from isol8 import labels as L

    engine = app.engine
    containers = engine.inspect_containers(engine.list_containers({L.RUN_ID: None}))
    for c in containers:
        state = "running" if c.running else "stopped"
        owner = f"pid {c.labels.get(L.RUN_PID, '?')} on {c.labels.get(L.RUN_HOST, '?')}"
        app.say(f"container {c.name}  {state}  {c.image}  started by {owner}")
    images = []
    if app.args.images:
        for info in engine.inspect_images(engine.list_images({L.MANAGED: "true"})):
            if app.args.keep_base and L.BUILD_HASH in info.labels and L.DEPS_HASH not in info.labels:
                continue
            images.append(info)
            app.say(f"image {', '.join(info.tags) or info.id[:12]}  {info.labels.get(L.RUNTIME, '')}")
    if not containers and not images:
        app.say("nothing to remove")
        return ExitStatus.OK
    what = f"{len(containers)} container(s)" + (f" and {len(images)} image(s)" if app.args.images else "")
    if app.args.dry_run:
        app.say(f"{what} would be removed")
        return ExitStatus.OK
    if not app.args.force and sys.stdin is not None and sys.stdin.isatty():
        app.stdout.write(f"Remove {what}? [y/N] ")
        app.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            app.say("nothing removed")
            return ExitStatus.OK
    engine.remove_containers([c.id for c in containers])
    if images:
        from isol8.core.caches import ResolutionCache

        ResolutionCache(engine.name).clear()
    kept = 0
    for info in images:
        # by name, never forced: an image a container (running or not) still uses stays
        failures = engine.remove_images(list(info.tags) or [info.id])
        for failure in failures:
            kept += 1
            app.progress(f"kept {', '.join(info.tags) or info.id[:12]}: {failure.message}")
    app.say(f"removed {len(containers)} container(s)" + (f" and {len(images) - kept} image(s)" if images else ""))
    return ExitStatus.OK


def registry_settings(app: App) -> object:
    import os

    from isol8.core.custom import RegistrySettings

    values = app.config.package_settings(os.environ)
    return RegistrySettings(values["pipIndexUrl"], values["npmRegistry"], values["caBundle"])


def prepare_packages(app: App, request: object, install: list[str], *, remembered: bool = True) -> object:
    """--install for the CLI: isol8.core.provision.provide with the config's settings and the CLI's streams."""
    from isol8.core.custom import RegistrySettings
    from isol8.core.provision import provide
    from isol8.core.runner import RunRequest

    assert isinstance(request, RunRequest)
    registry = registry_settings(app)
    assert isinstance(registry, RegistrySettings)
    return provide(
        app.engine,
        request,
        install,
        base_images=app.config.base_images,
        registry=registry,
        debug=app.progress if app.debug else None,
        notice=app.progress if app.stderr.isatty() else (lambda line: None),
        on_failure=lambda output: app.progress("\n".join(output.splitlines()[-25:]).replace("\n", "\nisol8: ")),
        remembered=remembered,
    )


def cmd_build(app: App) -> int:
    from isol8.core.custom import ImageDefinition, RegistrySettings, build_image, read_setup
    from isol8.ecosystems import parse_specs, read_requirements

    args = app.args
    _check_tag(args.tag)
    runtime = runtimes.get(args.base)
    specs = parse_specs(runtime, args.install)
    if args.requirements:
        specs = tuple(sorted({*specs, *read_requirements(runtime, args.requirements)}))
    setup = read_setup(args.setup)
    if not specs and setup is None:
        raise UsageError("nothing to build: give at least one package (--install/--requirements) or --setup")
    registry = registry_settings(app)
    assert isinstance(registry, RegistrySettings)
    app.engine.version()
    outcome = build_image(
        app.engine,
        ImageDefinition(runtime, specs, setup),
        args.tag,
        registry=registry,
        base_images=app.config.base_images,
        force=args.force,
        progress=app.progress,
    )
    state = "built" if outcome.built else "up to date (same definition)"
    app.say(f"{args.tag}: {state} ({outcome.image_id[:12]})")
    if outcome.resolved:
        app.say(f"  installed: {outcome.resolved}")
    return ExitStatus.OK


def _check_tag(tag: str, what: str = "--tag") -> None:
    from isol8.reference import check_image_name

    try:
        check_image_name(tag)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def cmd_images(app: App) -> int:
    from isol8 import labels as L

    engine = app.engine
    wanted = {L.DEPS_HASH: None, **({L.RUNTIME: app.args.runtime} if app.args.runtime else {})}
    infos = sorted(engine.inspect_images(engine.list_images(wanted)), key=lambda i: (i.tags, i.id))
    rows = [
        {
            "tag": (info.tags[0] if info.tags else info.id[:12]),
            "tags": list(info.tags),
            "id": info.id,
            "runtime": info.labels.get(L.RUNTIME, ""),
            "packages": [p for p in info.labels.get(L.DEPENDENCIES, "").split(",") if p],
            "resolved": [p for p in info.labels.get(L.RESOLVED, "").split(",") if p],
            "setup": (info.labels.get(L.SETUP) or "").split("\n", 1)[0] or None,
            "auto": info.labels.get(L.AUTO) == "true",
            "size": info.size,
            "created": info.created.isoformat() if info.created else None,
        }
        for info in infos
    ]
    if app.args.json:
        app.say(json.dumps(rows, indent=2))
        return ExitStatus.OK
    if not rows:
        app.say("no custom images (isol8 build creates them)")
    for info in infos:
        packages = info.labels.get(L.RESOLVED) or info.labels.get(L.DEPENDENCIES) or "-"
        cached = "  (cached by run --install)" if info.labels.get(L.AUTO) == "true" else ""
        created = info.created.strftime("%Y-%m-%d %H:%M") if info.created else ""
        name = info.tags[0] if info.tags else info.id[:12]
        app.say(f"{name}  {info.labels.get(L.RUNTIME, '')}  {packages}  {info.size / 1e6:.0f} MB  {created}{cached}")
        setup = (info.labels.get(L.SETUP) or "").split("\n", 1)[0]
        if setup:
            app.say(f"    setup: {setup}")
    return ExitStatus.OK


def cmd_resolve(app: App) -> int:
    from isol8.core.discovery import resolve
    from isol8.ecosystems import parse_specs

    runtime = runtimes.get(app.args.runtime)
    specs = parse_specs(runtime, app.args.install)
    resolution = resolve(app.engine, runtime, specs, base=app.engine.dialect.local_image(runtime.image))
    if app.args.json:
        app.say(json.dumps(resolution.to_json()))
    else:
        app.say(f"{resolution.match}: {resolution.image}")
        app.say(f"  {resolution.reason}")
        if resolution.install:
            app.say(f"  to install at run time: {', '.join(s.text for s in resolution.install)}")
    return ExitStatus.OK


def cmd_serve(app: App) -> int:
    import ipaddress
    import os

    from isol8.core.custom import RegistrySettings
    from isol8.core.images import ensure_base_images

    args = app.args
    key = args.key or os.environ.get("ISOL8_API_KEY")
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not key and not args.insecure_no_auth:
        raise UsageError("an API key is required: --key or ISOL8_API_KEY (--insecure-no-auth serves without one)")
    if not key and not loopback:
        raise UsageError("--insecure-no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost)")
    port_text = args.port if args.port is not None else os.environ.get("ISOL8_PORT") or os.environ.get("PORT") or 3000
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"not a port number: {port_text!r}")
    try:
        from isol8.frontends.server.app import ServerState, serve
    except ImportError:
        raise UsageError("isol8 serve needs the server extra: pip install 'isol8[server]'") from None
    engine = app.engine
    engine.version()
    base_images = dict(app.config.base_images)
    for outcome in ensure_base_images(engine, runtimes.NAMES, base_images=base_images, progress=app.progress):
        app.progress(f"{outcome.image}: {'built' if outcome.built else 'up to date'}")
    build_prebuilt_images(app, base_images)
    registry = registry_settings(app)
    assert isinstance(registry, RegistrySettings)
    state = ServerState(engine, app.config, key or None, registry)
    app.progress(f"starting warm pools ({state.pool.size} containers per runtime)")
    serve(
        state,
        args.host,
        port,
        ready=lambda: app.progress(f"listening on http://{args.host}:{port} (server id {state.server_id})"),
    )
    app.progress("stopped; this server's containers were removed")
    return ExitStatus.OK


def remote_body(app: App, request: object) -> dict[str, object]:
    """The wire format of `isol8 run` flags for an isol8 server; limits only when given on the command line."""
    import base64

    from isol8.core.runner import RunRequest

    assert isinstance(request, RunRequest)
    args = app.args
    body: dict[str, object] = {"runtime": request.runtime.name, "workdir": request.workdir}
    if request.cmd is not None:
        body["cmd"] = request.cmd
    else:
        body["code"] = (request.code or b"").decode("utf-8", "replace")
    if request.env:
        body["env"] = dict(request.env)
    stdin = b"".join(request.stdin)
    if stdin:
        body["stdin"] = stdin.decode("utf-8", "replace")
    if request.files_dir is not None:
        from isol8.core.payload import walk_directory

        files: dict[str, object] = {}
        for path, rel in walk_directory(request.files_dir):
            if path.is_file():
                files[rel] = {"base64": base64.b64encode(path.read_bytes()).decode()}
        body["files"] = files
    if args.install:
        body["installPackages"] = list(args.install)
    if args.timeout is not None:
        body["timeoutMs"] = request.timeout_ms
    options: dict[str, object] = {}
    policy = request.policy
    for flag, name, value in (
        ("memory", "memoryLimit", policy.memory),
        ("cpu", "cpuLimit", policy.cpus),
        ("pids_limit", "pidsLimit", policy.pids_limit),
        ("net", "network", policy.network),
        ("sandbox_size", "sandboxSize", policy.sandbox_size),
        ("tmp_size", "tmpSize", policy.tmp_size),
        ("shm_size", "shmSize", policy.shm_size),
        ("image", "image", request.image),
    ):
        if getattr(args, flag) is not None:
            options[name] = value
    if args.max_output is not None:
        options["maxOutputSize"] = request.max_output
    if request.secrets:
        options["secrets"] = dict(request.secrets)
    return {"request": body, "options": options}
