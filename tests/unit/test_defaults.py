"""Every built-in default is written once (isol8/defaults.py): the CLI help, the config, the library and the
server all show and apply the same values."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from isol8 import units
from isol8.config import RUN_LIMITS, SCHEMA, Config, RunDefaults, parse_config_text
from isol8.core.plan import plan_run, sandbox_policy
from isol8.core.runner import RunRequest
from isol8.core.sandbox import SandboxPolicy
from isol8.defaults import DEFAULTS, RUN
from isol8.frontends.cli.main import main
from isol8.runtimes import RUNTIMES

# run's flag for each config key, and how its help shows the value
FLAGS = {
    "timeoutMs": ("--timeout", units.format_duration),
    "memoryLimit": ("--memory", str),
    "cpuLimit": ("--cpu", lambda v: f"{v:g}"),
    "pidsLimit": ("--pids-limit", str),
    "sandboxSize": ("--sandbox-size", str),
    "tmpSize": ("--tmp-size", str),
    "shmSize": ("--shm-size", str),
    "maxOutputSize": ("--max-output", units.format_size),
    "network": ("--net", str),
}


def run_help() -> str:
    out = io.StringIO()
    assert main(["run", "--help"], stdout=out, stderr=io.StringIO()) == 0
    options = out.getvalue().split("\noptions:", 1)[1]  # past the usage line
    return " ".join(options.split())  # argparse wraps lines


def test_every_run_default_has_a_flag_and_a_config_key() -> None:
    assert set(FLAGS) == {*RUN_LIMITS, "network"} == set(SCHEMA["defaults"]) == set(RUN)


@pytest.mark.parametrize("key", FLAGS)
def test_the_cli_help_shows_the_built_in_default(key: str) -> None:
    flag, shown = FLAGS[key]
    text = run_help()
    entry = re.search(re.escape(flag) + r"(?: [A-Z]+| \{[a-z,]+\})? (.*?)(?= --[a-z]|$)", text)
    assert entry is not None, flag
    assert f"default: {shown(RUN[key])}" in entry.group(1), (flag, entry.group(1))


def test_the_defaults_are_a_valid_config_file() -> None:
    import json

    assert parse_config_text(json.dumps(DEFAULTS), "defaults.json") == DEFAULTS


def test_the_library_the_config_and_the_plan_agree() -> None:
    run = Config().run
    policy = SandboxPolicy()
    for field in ("memory", "cpus", "pids_limit", "network", "sandbox_size", "tmp_size", "shm_size"):
        assert getattr(policy, field) == getattr(run, field), field
    request = RunRequest(runtime=RUNTIMES["python"], code=b"")
    assert (request.timeout_ms, request.max_output) == (run.timeout_ms, run.max_output)
    assert request.policy == policy
    planned = plan_run(Config(), {}, runtime=RUNTIMES["python"], code=b"")
    assert (planned.timeout_ms, planned.max_output, planned.policy) == (run.timeout_ms, run.max_output, policy)
    assert sandbox_policy(run, Config()) == policy
    assert run == RunDefaults.from_data(RUN)


def test_the_server_applies_the_same_defaults(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from isol8.backends.engine.backend import EngineBackend
    from isol8.backends.engine.dialect import DOCKER
    from isol8.config import PackageSettings
    from isol8.frontends.server.policy import build_run
    from isol8.frontends.server.state import ServerState

    state = ServerState(EngineBackend(DOCKER), Config(), None, PackageSettings())
    try:
        assert state.pool.policy == SandboxPolicy()
        assert state.pool.size == DEFAULTS["server"]["poolSize"]
        settings = state.settings
        assert settings.max_concurrent == DEFAULTS["maxConcurrent"]
        assert settings.queue_timeout_s * 1000 == DEFAULTS["server"]["queueTimeoutMs"]
        assert settings.session_idle_s * 1000 == DEFAULTS["server"]["sessionIdleMs"]
        assert settings.max_body_bytes == DEFAULTS["server"]["maxBodyBytes"]
        run, _ = build_run(state, {"request": {"code": "print(1)"}}, tmp_path)
        planned = plan_run(Config(), {}, runtime=RUNTIMES["python"], code=b"")
        assert run._replace(labels={}, code=b"", stdin=[]) == planned._replace(stdin=[]), (
            "a request without limits runs with the config's defaults"
        )
    finally:
        state.sessions.close()
