"""From the config and a caller's overrides to a RunRequest: the CLI, the server and the library share it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from isol8 import units
from isol8.config import RUN_LIMITS, Config, RunDefaults
from isol8.core.runner import RunRequest
from isol8.core.sandbox import NETWORKS, SandboxPolicy
from isol8.errors import LimitRefused, UsageError

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

    from isol8.core.egress import Egress


def _shown(key: str, value: int | float) -> str:
    """A limit as a config file would say it: 512m, 30s, 0.5."""
    if key == "timeoutMs":
        return units.format_duration(int(value))
    if key in ("cpuLimit", "pidsLimit"):
        return f"{value:g}"
    return units.format_size(int(value))


def choose_limits(run: RunDefaults, asked: Mapping[str, object], *, ceiling: bool = False) -> RunDefaults:
    """run with the asked limits (config keys -> raw values: flag texts, JSON values) parsed by isol8.units.

    ceiling: each one must be at most run's own (a server's requests may only tighten its config).
    A network that is not none or host is refused here too; whether host is allowed is the caller's call."""
    changes: dict[str, Any] = {}
    for key, value in asked.items():
        if key == "network":
            if value not in NETWORKS:
                raise LimitRefused(key, f"network must be none, host or filtered, not {value!r}", above=False)
            changes["network"] = value
            continue
        name, parse = RUN_LIMITS[key]
        try:
            parsed = parse(value)
        except units.InvalidLimit as exc:
            raise LimitRefused(key, f"{key}: {exc}", above=False, reason=str(exc)) from None
        limit = getattr(run, name)
        if ceiling and parsed > limit:
            raise LimitRefused(key, f"{key} {value} exceeds the server's limit {_shown(key, limit)}", above=True)
        changes[name] = parsed
    return run._replace(**changes)


def egress_for(
    network: str, config: Config, allow: Sequence[str] | None = None, deny: Sequence[str] = ()
) -> Egress | None:
    """What a run on `network` may reach: allow replaces the config's network.whitelist (None: keep
    it); deny adds to its blacklist, which no caller can drop. Only a filtered network has one."""
    if network != "filtered":
        if allow or deny:
            raise UsageError(f"allowed and denied hosts need a filtered network, not {network}")
        return None
    from isol8.core.egress import make_egress

    settings = config.network
    return make_egress(
        settings.whitelist if allow is None else allow,
        (*settings.blacklist, *deny),
        allow_private=settings.allow_private,
        hosts=settings.hosts,
    )


def sandbox_policy(run: RunDefaults, config: Config, egress: Egress | None = None) -> SandboxPolicy:
    return SandboxPolicy(
        memory=run.memory,
        cpus=run.cpus,
        pids_limit=run.pids_limit,
        network=run.network,
        sandbox_size=run.sandbox_size,
        tmp_size=run.tmp_size,
        shm_size=run.shm_size,
        seccomp_profile=config.backend.seccomp_profile,
        egress=egress,
    )


def plan_run(
    config: Config,
    asked: Mapping[str, object],
    *,
    ceiling: bool = False,
    allow: Sequence[str] | None = None,
    deny: Sequence[str] = (),
    **request: Any,
) -> RunRequest:
    """The RunRequest for request's fields (runtime, code or cmd, env...), with the config's limits
    and network except those asked for (see choose_limits), and a filtered network's hosts (egress_for)."""
    run = choose_limits(config.run, asked, ceiling=ceiling)
    policy = sandbox_policy(run, config, egress_for(run.network, config, allow, deny))
    return RunRequest(
        timeout_ms=run.timeout_ms,
        max_output=run.max_output,
        policy=policy,
        output_limits=config.output_files,
        **request,
    ).check()
