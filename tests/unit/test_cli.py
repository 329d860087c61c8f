"""The command line in process: main(argv, stdout=, stderr=) -> status; no engine is ever started."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import isol8
import isol8.process
from isol8.config import DEFAULTS
from isol8.runtimes import NAMES
from tests.conftest import CliResult

RunCli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(isolated: Path) -> Path:
    return isolated


@pytest.fixture(autouse=True)
def _no_engine(engine_calls: list[str]) -> list[str]:
    return engine_calls


# ---- top level ----------------------------------------------------------------------------------


def test_no_arguments_prints_help_and_returns_0(run_cli: RunCli) -> None:
    status, out, err = run_cli()
    assert status == 0
    assert out.startswith("usage: isol8 ")
    for command in ("run", "setup", "config", "cleanup"):
        assert f"\n    {command} " in out, command
    assert "exit status:" in out
    assert err == ""


def test_help_returns_0(run_cli: RunCli) -> None:
    status, out, err = run_cli("--help")
    assert (status, err) == (0, "")
    assert out.startswith("usage: isol8 ")


@pytest.mark.parametrize("command", ["run", "setup", "config", "cleanup"])
def test_command_help_returns_0(run_cli: RunCli, command: str) -> None:
    status, out, err = run_cli(command, "--help")
    assert (status, err) == (0, "")
    assert out.startswith(f"usage: isol8 {command} ")


def test_version(run_cli: RunCli) -> None:
    assert run_cli("--version") == (0, f"isol8 {isol8.__version__}\n", "")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--engine", "lxc", "config"], "invalid choice: 'lxc'"),
        (["config", "--yaml"], "unrecognized arguments: --yaml"),
    ],
)
def test_argparse_usage_errors_return_2(run_cli: RunCli, argv: list[str], fragment: str) -> None:
    status, out, err = run_cli(*argv)
    assert status == 2
    assert out == ""
    assert fragment in err
    assert "usage: isol8" in err


# ---- run: usage errors, found before any engine is used -----------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["run", "hello.py", "-e", "print(1)"], ["only one of", "FILE and -e"]),
        (["run", "-e", "print(1)", "--cmd", "ls"], ["only one of", "-e and --cmd"]),
        (["run", "-r", "ruby", "-e", "puts 1"], ["'ruby'", *NAMES]),
        (["run", "script.rb"], ["'script.rb'", "--runtime", *NAMES]),
        (["run", "missing.py"], ["missing.py"]),
        (["run", "-e", "1", "--timeout", "soon"], ["not a duration", "'soon'"]),
        (["run", "-e", "1", "--timeout", "0"], ["--timeout", "out of range"]),
        (["run", "-e", "1", "--timeout=-5s"], ["not a duration"]),
        (["run", "-e", "1", "--workdir", "/etc"], ["/sandbox", "'/etc'"]),
        (["run", "-e", "1", "--workdir", "../etc"], ["/sandbox", "'../etc'"]),
        (["run", "-e", "1", "--workdir", "/sandbox/../root"], ["/sandbox", "'/sandbox/../root'"]),
        (["run", "-e", "1", "--env", "FOO"], ["--env", "KEY=VALUE", "'FOO'"]),
        (["run", "-e", "1", "--env", "=bar"], ["--env", "KEY=VALUE", "'=bar'"]),
        (["run", "-e", "1", "--env", "A=1", "--env", "NOPE"], ["--env", "'NOPE'"]),
        (["run", "-e", "1", "--secret", "ISOL8_UNSET"], ["--secret ISOL8_UNSET", "'ISOL8_UNSET' is not set"]),
        (["run", "-e", "1", "--env", "1BAD=x"], ["'1BAD'"]),
        (["run", "-e", "1", "--memory", "lots"], ["not a size", "'lots'"]),
        (["run", "-e", "1", "--max-output", "0"], ["--max-output", "out of range"]),
        (["run", "-e", "1", "--cpu", "0"], ["--cpu"]),
        (["run", "-e", "1", "--files", "no-such-dir"], ["--files", "no-such-dir"]),
        (["run", "-e", "1", "--image=-v/:/host"], ["image", "'-v/:/host'"]),
        # rejected by argparse itself
        (["run", "-e", "1", "--net", "bridge"], ["invalid choice: 'bridge'"]),
        (["run", "-e", "1", "--cpu", "many"], ["--cpu", "not a CPU count: 'many'"]),
        (["run", "-e"], ["expected one argument"]),
    ],
)
def test_run_usage_errors_return_2_without_touching_an_engine(
    run_cli: RunCli, isolated: Path, engine_calls: list[str], argv: list[str], fragments: list[str]
) -> None:
    (isolated / "script.rb").write_text("puts 1\n")
    status, out, err = run_cli(*argv)
    assert status == 2, err
    assert out == ""
    assert "error:" in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "internal error" not in err
    assert engine_calls == []


def test_run_usage_error_is_one_line_with_the_isol8_prefix(run_cli: RunCli) -> None:
    status, _, err = run_cli("run", "-r", "ruby", "-e", "1")
    assert status == 2
    assert err == "isol8: error: unknown runtime 'ruby'; choose one of: python, node, bun, deno, bash\n"


def test_run_with_an_invalid_config_returns_2_before_the_engine(
    run_cli: RunCli, isolated: Path, engine_calls: list[str]
) -> None:
    (isolated / "isol8.config.yaml").write_text("defaults:\n  memoryLimt: 1g\n")
    status, out, err = run_cli("run", "-e", "print(1)")
    assert (status, out) == (2, "")
    assert "defaults.memoryLimt" in err
    assert str(isolated / "isol8.config.yaml") in err
    assert engine_calls == []


# ---- config -------------------------------------------------------------------------------------

CONFIG_YAML = "engine: podman\ndefaults:\n  timeoutMs: 5000\nbaseImages:\n  python: python:3.12-slim\n"


@pytest.mark.parametrize(
    "placement",
    [
        lambda f: ["config", "--json", "--config", f],
        lambda f: ["--config", f, "config", "--json"],
        lambda f: ["config", f"--config={f}", "--json"],
    ],
    ids=["after-command", "before-command", "equals-form"],
)
def test_config_json_with_config_flag(
    run_cli: RunCli, tmp_path: Path, engine_calls: list[str], placement: Callable[[str], list[str]]
) -> None:
    path = tmp_path / "my-isol8.yaml"
    path.write_text(CONFIG_YAML)
    status, out, err = run_cli(*placement(str(path)))
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert set(shown) == {"source", "sources", "config", "origins", "endpoint"}
    assert shown["endpoint"] == {"engine": "podman", "where": None}  # the engine chosen, never asked anything
    assert (shown["source"], shown["sources"]) == (str(path), [str(path)])
    assert shown["origins"]["defaults.timeoutMs"] == str(path)
    assert shown["origins"]["defaults.memoryLimit"] == "built-in"
    config = shown["config"]
    assert config["engine"] == "podman"
    assert config["defaults"]["timeoutMs"] == 5000
    assert config["defaults"]["memoryLimit"] == DEFAULTS["defaults"]["memoryLimit"]  # merged over defaults
    assert config["baseImages"] == {"python": "python:3.12-slim"}
    assert config["prebuiltImages"] == []
    assert engine_calls == []


def test_config_json_without_a_file_shows_the_defaults(run_cli: RunCli) -> None:
    status, out, err = run_cli("config", "--json")
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert (shown["source"], shown["sources"], shown["config"]) == (None, [], DEFAULTS)
    assert set(shown["origins"].values()) == {"built-in"}


def test_config_show_origin_names_the_file_or_variable_of_each_key(
    run_cli: RunCli, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "home" / ".isol8" / "config.json"
    user.parent.mkdir(parents=True)
    user.write_text('{"baseImages": {"python": "local/python:1"}}')
    (isolated / "isol8.config.json").write_text('{"maxConcurrent": 4}')
    monkeypatch.setenv("ISOL8_CA_BUNDLE", "none")
    status, out, err = run_cli("config", "--show-origin")
    assert (status, err) == (0, "")
    rows = {line.split()[1]: (line.split()[0], line.split(None, 2)[2]) for line in out.splitlines()}
    assert rows["baseImages.python:"] == (str(user), '"local/python:1"')
    assert rows["maxConcurrent:"] == (str(isolated / "isol8.config.json"), "4")
    assert rows["packages.caBundle:"] == ("ISOL8_CA_BUNDLE", '"none"')
    assert rows["defaults.timeoutMs:"] == ("built-in", "30000")
    status, out, _ = run_cli("--no-user-config", "config", "--json")
    assert json.loads(out)["config"]["baseImages"] == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")
def test_a_project_file_of_another_user_is_ignored_with_a_warning(run_cli: RunCli, isolated: Path) -> None:
    planted = isolated / "isol8.config.json"
    planted.write_text('{"maxConcurrent": 4}')
    os.chown(planted, 4242, 4242)
    status, out, err = run_cli("config", "--json")
    assert status == 0
    assert json.loads(out)["config"]["maxConcurrent"] == DEFAULTS["maxConcurrent"]
    assert err == f"isol8: warning: ignored config file {planted}: owned by uid 4242, not by you (uid 0)\n"


@pytest.mark.parametrize("where", ["env", "cwd", "home"])
def test_config_json_finds_the_file_on_the_search_path(
    run_cli: RunCli, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = {
        "env": tmp_path / "from-env.yml",
        "cwd": isolated / "isol8.config.yml",
        "home": tmp_path / "home" / ".isol8" / "config.yaml",
    }[where]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG_YAML)
    if where == "env":
        monkeypatch.setenv("ISOL8_CONFIG", str(path))
    status, out, err = run_cli("config", "--json")
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert shown["source"] == str(path)
    assert shown["config"]["defaults"]["timeoutMs"] == 5000


def test_config_flag_beats_isol8_config(run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file, flag_file = tmp_path / "env.yaml", tmp_path / "flag.yaml"
    env_file.write_text("engine: docker\n")
    flag_file.write_text("engine: podman\n")
    monkeypatch.setenv("ISOL8_CONFIG", str(env_file))
    status, out, _ = run_cli("--config", str(flag_file), "config", "--json")
    assert status == 0
    assert json.loads(out)["source"] == str(flag_file)
    assert json.loads(out)["config"]["engine"] == "podman"


def test_config_as_yaml(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG_YAML)
    status, out, err = run_cli("config", "--config", str(path))
    assert (status, err) == (0, "")
    first, _, rest = out.partition("\n")
    assert first == f"source: {path}"
    assert yaml.safe_load(rest)["defaults"]["timeoutMs"] == 5000


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("defaults:\n  timeoutMS: 5000\n", "defaults.timeoutMS"),
        ("engine: docker\nengnie: podman\n", "engnie"),
        ("prebuiltImages:\n  - tag: t\n    runtime: python\n    packages: [x]\n", "prebuiltImages[0].packages"),
    ],
)
def test_config_with_an_unknown_key_returns_2_and_names_it(
    run_cli: RunCli, tmp_path: Path, engine_calls: list[str], text: str, key_path: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    status, out, err = run_cli("config", "--json", "--config", str(path))
    assert (status, out) == (2, "")
    assert err.startswith("isol8: error: ")
    assert f"{key_path}: unknown key" in err
    assert str(path) in err
    assert engine_calls == []


def test_config_with_a_wrong_type_returns_2_and_names_the_key(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"defaults": {"timeoutMs": "0.5"}}')
    status, out, err = run_cli("--config", str(path), "config", "--json")
    assert (status, out) == (2, "")
    assert "defaults.timeoutMs" in err and str(path) in err


def test_missing_config_file_returns_2(run_cli: RunCli, tmp_path: Path) -> None:
    status, out, err = run_cli("config", "--config", str(tmp_path / "absent.yaml"))
    assert (status, out) == (2, "")
    assert str(tmp_path / "absent.yaml") in err


# ---- import cost and the real entry point -------------------------------------------------------

IMPORT_PROBE = """\
import io, json, sys
before = set(sys.modules)
import isol8.frontends.cli.main
after_import = set(sys.modules)
isol8.frontends.cli.main.main(["--help"], stdout=io.StringIO(), stderr=io.StringIO())
isol8.frontends.cli.main.main(["run", "--help"], stdout=io.StringIO(), stderr=io.StringIO())
after_help = set(sys.modules)

def outside_stdlib(names):
    return sorted(n for n in names if n.partition(".")[0] not in sys.stdlib_module_names | {"isol8"})

print(json.dumps({
    "import": outside_stdlib(after_import - before),
    "help": outside_stdlib(after_help - before),
    "yaml_or_tenacity": sorted(n for n in sys.modules if n.partition(".")[0] in ("yaml", "tenacity")),
}))
"""


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISOL8_")}
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_importing_the_cli_and_printing_help_load_only_the_stdlib(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded == {"import": [], "help": [], "yaml_or_tenacity": []}


@pytest.mark.parametrize(("argv", "start"), [(["--help"], "usage: isol8 "), (["--version"], "isol8 ")])
def test_python_m_isol8(tmp_path: Path, argv: list[str], start: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "isol8", *argv],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(start)


def test_python_m_isol8_usage_error_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "isol8", "frobnicate"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.parametrize(
    ("args", "config", "endpoint"),
    [
        (["--context", "ci"], "", {"engine": "docker", "where": "--context=ci"}),
        (["--docker-host", "ssh://u@box"], "", {"engine": "docker", "where": "--host=ssh://u@box"}),
        (["--url", "unix:///s.sock"], "", {"engine": "podman", "where": "--url=unix:///s.sock"}),
        ([], "backend:\n  connection: box\n", {"engine": "podman", "where": "--connection=box"}),
        (
            [],
            "backend:\n  host: tcp://box:2376\n  tlsCertPath: /certs\n",
            {
                "engine": "docker",
                "where": "--host=tcp://box:2376 --tlsverify --tlscacert=/certs/ca.pem --tlscert=/certs/cert.pem"
                " --tlskey=/certs/key.pem",
            },
        ),
        (["--context", "ci"], "backend:\n  url: unix:///s.sock\n", {"engine": "docker", "where": "--context=ci"}),
    ],
)
def test_config_shows_the_engine_endpoint_the_options_or_the_config_choose(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], config: str, endpoint: object
) -> None:
    """Each endpoint key belongs to one engine, which it chooses; the command line's replace the config's."""
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINER_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(config)
    status, out, err = run_cli(*args, "--config", str(path), "config", "--json")
    assert (status, err) == (0, "")
    assert json.loads(out)["endpoint"] == endpoint


@pytest.mark.parametrize(
    ("args", "config", "says"),
    [
        (["--engine", "podman", "--context", "ci"], "", "context: docker's endpoint options, but the engine is podman"),
        ([], "backend:\n  context: ci\n  url: unix:///s\n", "docker's (context, host, tlsCertPath) and podman's"),
        (["--context", "a", "--docker-host", "ssh://b"], "", "--context and --host name two endpoints"),
        (["--engine", "podman"], "backend:\n  tlsCertPath: /c\n", "tlsCertPath: docker's endpoint options, but"),
    ],
)
def test_endpoint_options_that_contradict_each_other_are_refused(
    run_cli: RunCli, tmp_path: Path, args: list[str], config: str, says: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config)
    status, out, err = run_cli(*args, "--config", str(path), "config", "--json")
    assert (status, err) == (0, "")
    shown = json.loads(out)["endpoint"]
    assert shown["engine"] is None and says in shown["error"]


# ---- run --dry-run -------------------------------------------------------------------------------


@pytest.fixture
def planning_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real docker backend whose commands are planned, never run (processes stay refused)."""
    from isol8.backends.engine.backend import EngineBackend
    from isol8.backends.engine.dialect import DOCKER
    from isol8.frontends.cli.app import App

    engine = EngineBackend(DOCKER)
    monkeypatch.setattr(App, "backend", property(lambda app: engine))


def test_dry_run_prints_the_engine_command_and_runs_nothing(
    run_cli: RunCli, planning_backend: None, engine_calls: list[str]
) -> None:
    status, out, err = run_cli("run", "--dry-run", "--env", "TOKEN=s3cret-value", "-e", "print('the-program')")
    assert status == 0, err
    argv = shlex.split(out)
    assert argv[:4] == ["docker", "run", "--rm", "-i"] and argv[argv.index("--network") + 1] == "none"
    assert argv[-5:] == ["isol8", "/sandbox", "35", "python3", "/sandbox/main.py"]  # the wrapper's arguments
    assert "the-program" not in out and "s3cret-value" not in out  # they go on stdin, never in argv
    assert "stdin" in err and engine_calls == []


def test_dry_run_json_is_the_argv_itself(run_cli: RunCli, planning_backend: None) -> None:
    status, out, _ = run_cli("run", "--dry-run", "--json", "--memory", "64m", "--cmd", "echo hi")
    (argv,) = json.loads(out)["commands"]
    assert status == 0 and argv[0] == "docker" and argv[argv.index("--memory") + 1] == str(64 * 1024 * 1024)


@pytest.mark.parametrize("extra", [["--install", "six"], ["--host", "http://127.0.0.1:1"], ["--out", "x"]])
def test_dry_run_of_what_is_more_than_one_command_is_refused(
    run_cli: RunCli, planning_backend: None, extra: list[str]
) -> None:
    status, out, err = run_cli("run", "--dry-run", *extra, "-e", "print(1)")
    assert status == 2 and "--dry-run shows a plain local run" in err
