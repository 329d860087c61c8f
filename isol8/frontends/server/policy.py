"""What a request may ask of this server: limits only at or below the config's, host network and other
images only when the config allows them, the rest never. Everything else is refused, never ignored."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isol8 import labels as L
from isol8 import runtimes
from isol8.core.plan import plan_run
from isol8.core.runner import RunRequest
from isol8.errors import LimitRefused, RequestError, UsageError
from isol8.frontends import wire
from isol8.frontends.server.state import ServerState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.ecosystems import Spec


def _write_files(files: Mapping[str, bytes], into: Path) -> None:
    for raw, data in files.items():
        rel = Path(raw.removeprefix("/sandbox/").lstrip("/"))
        if not rel.parts or ".." in rel.parts:
            raise RequestError(400, f"files: path must be inside /sandbox: {raw!r}")
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _check_options(state: ServerState, asked: wire.WireRequest) -> None:
    if asked.image is not None and not state.settings.allow_images:
        raise RequestError(403, "choosing an image is not allowed by this server's policy")
    if asked.keep_background and asked.session_id is None:
        raise RequestError(400, "keepBackground only applies to a session (give a sessionId)")
    if asked.loosening:
        raise RequestError(403, f"option {asked.loosening[0]} is not allowed by this server's policy")


def _check_egress(state: ServerState, run: RunRequest, asked: wire.WireRequest) -> None:
    """A filtered run's hosts must stay within server.allowedHosts, and only a single run has one."""
    egress = run.policy.egress
    if egress is None:
        return
    if asked.session_id is not None:
        raise RequestError(400, "a filtered network is for single executions, not sessions")
    from isol8.core.egress import covered

    ceiling = state.settings.allowed_hosts
    outside = [host for host in egress.allow if not covered(host, ceiling)]
    if outside:
        raise RequestError(403, f"host {outside[0]} is not allowed by this server's policy (server.allowedHosts)")


def build_run(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> tuple[RunRequest, tuple[str, ...]]:
    """Wire format -> (RunRequest, packages to install), enforcing the server's policy (400/403 otherwise)."""
    asked = wire.parse_request(body)
    _check_options(state, asked)
    try:
        run = plan_run(
            state.config,
            asked.limits,
            ceiling=True,
            runtime=runtimes.get(asked.runtime),
            code=asked.code.encode() if asked.code is not None else None,
            cmd=asked.cmd,
            files_dir=files_dir if asked.files else None,
            stdin=[asked.stdin.encode()] if asked.stdin is not None else [],
            env=asked.env,
            secrets=asked.secrets,
            workdir=asked.workdir,
            image=asked.image,
            labels={L.SERVER_ID: state.server_id},
            keep_background=asked.keep_background,
            setup=asked.setup_script,
            output_paths=asked.output_paths,
            filename=asked.filename,
            allow=asked.allow,
            deny=asked.deny,
        )
    except LimitRefused as exc:
        raise RequestError(403 if exc.above else 400, str(exc)) from None
    except (UsageError, ValueError) as exc:
        raise RequestError(400, str(exc)) from None
    # the network the run gets, asked for or the config's own: a config's "host" needs the permission too
    if run.policy.network == "host" and not state.settings.allow_host_network:
        raise RequestError(403, "network host is not allowed by this server's policy")
    _check_egress(state, run, asked)
    _write_files(asked.files, files_dir)
    return run, asked.install


def prepare(state: ServerState, body: Mapping[str, Any], files_dir: Path) -> RunRequest:
    """The request to run: checked, and with its packages provided (packages.strategy: an image
    that has them, or installed into its sandbox)."""
    run, install = build_run(state, body, files_dir)
    return provide_packages(state, run, install, state.packages.strategy)


def provide_packages(state: ServerState, run: RunRequest, install: tuple[str, ...], strategy: str) -> RunRequest:
    if not install:
        return run
    from isol8.core.provision import provide

    try:
        return provide(
            state.backend,
            run,
            install,
            base_images=state.config.base_images,
            registry=state.packages,
            strategy=strategy,
            shared=state.config.registry,
        )
    except UsageError as exc:
        raise RequestError(400, str(exc)) from None


def install_specs(run: RunRequest, install: tuple[str, ...]) -> tuple[Spec, ...]:
    """A request's packages, parsed (400 for a bad spec, or a runtime that has no installs)."""
    if not install:
        return ()
    from isol8.core.provision import check_install
    from isol8.ecosystems import parse_specs

    try:
        check_install(run.runtime, install)
        return parse_specs(run.runtime, install)
    except UsageError as exc:
        raise RequestError(400, str(exc)) from None
