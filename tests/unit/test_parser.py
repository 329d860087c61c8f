"""main() builds only the command it runs: the narrow parser answers every argv exactly as the full one does."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pty
import shutil
import sys
import termios

import pytest

import isol8.frontends.cli.main as cli_main
from isol8.frontends.cli import help as P
from isol8.frontends.cli.help import Formatter, _terminal_columns
from isol8.frontends.cli.parser import _COMMANDS, SUMMARIES, build_parser, command_in

COMMANDS = ["run", "build", "images", "list-custom", "resolve", "setup", "serve", "mcp", "config", "doctor", "cleanup"]

# argv that name a command: command_in() finds it, and main() builds only that command
PARSED = [
    ["run", "-e", "print(1)", "--timeout", "5s", "--memory", "256m", "--env", "A=1", "--env", "B=2", "--json"],
    ["--engine", "docker", "run", "hello.py", "--net", "host", "--files", "./src", "--workdir", "/sandbox/app"],
    ["--config", "cfg.yaml", "--debug", "run", "--cmd", "ls", "--secret", "TOKEN", "--secret-file", "T=./t"],
    ["--engine=podman", "run", "--host", "http://h:3000", "--key", "k", "-r", "node", "--install", "lodash@4", "x.js"],
    ["run", "--no-stream", "--out", "o.bin", "--raw", "--persist", "--stdin", "data", "--image", "img", "--cpu", "2"],
    ["run", "--pids-limit", "9", "--sandbox-size", "1m", "--tmp-size", "2m", "--shm-size", "3m", "--max-output", "4"],
    ["run", "--engine", "podman", "--config", "c.json", "--debug", "x.py"],
    ["--config", "build", "run", "build"],
    ["--config=c.yaml", "build", "--base", "python", "--tag", "my-py", "--install", "numpy", "--setup", "echo hi"],
    ["build", "--base", "node", "--tag", "n", "--requirements", "package.json", "--force", "--install", "a,b"],
    ["images"],
    ["--engine", "podman", "images", "-r", "python", "--json"],
    ["--debug", "list-custom", "--json"],
    ["resolve", "-r", "python", "--install", "numpy", "--install", "pandas>=2", "--json"],
    ["setup"],
    ["--engine", "podman", "setup", "-r", "python", "-r", "node", "--force", "--base-image", "python=python:3.12"],
    ["serve", "--host", "0.0.0.0", "--port", "8080", "--key", "k"],
    ["--debug", "serve", "--insecure-no-auth"],
    ["config", "--json"],
    ["--no-user-config", "--config", "c.json", "config", "--show-origin"],
    ["doctor", "--network", "--json"],
    ["--config", "run", "config"],
    ["--engine", "docker", "--config", "f.yml", "--debug", "cleanup", "--force", "--dry-run", "--images"],
    ["cleanup", "--images", "--keep-base"],
]
NAMED = [
    *PARSED,
    *([command, "--help"] for command in COMMANDS),
    *(["--debug", "--engine", "docker", "--config=f", command, "-h"] for command in COMMANDS),
    ["run", "--bogus"],
    ["run", "--c", "x"],
    ["run", "--version"],
    ["run", "--net", "x"],
    ["run", "a.py", "b.py"],
    ["--engine", "bogus", "run"],
    ["--engine", "docker", "build"],
    ["build", "--base", "perl", "--tag", "t"],
    ["images", "-r", "perl"],
    ["resolve"],
    ["serve", "--port", "x"],
]

# argv whose command is not certain without parsing: main() builds every command, as before
UNNAMED = [
    [],
    ["--help"],
    ["-h", "run"],
    ["--version"],
    ["bogus"],
    ["--engine", "docker", "bogus"],
    ["RUN"],
    ["", "run"],
    ["--", "run"],
    ["--engine"],
    ["--engine", "docker"],
    ["--config"],
    ["--config", "-x", "run"],
    ["--config", "--debug", "run"],
    ["--eng", "docker", "run"],
    ["--debug=1", "run"],
    ["-x", "run"],
]


def _ids(argv: list[str]) -> str:
    return " ".join(argv) or "(none)"


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    """The Namespace (or the exit code of --help, --version and usage errors), stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = parser.parse_args(argv)
        except SystemExit as exc:
            result = exc.code
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", NAMED, ids=_ids)
def test_the_narrow_parser_answers_as_the_full_one(argv: list[str]) -> None:
    command = command_in(argv)
    assert command is not None
    assert _parse(build_parser(command), argv) == _parse(build_parser(), argv)


@pytest.mark.parametrize("argv", PARSED, ids=_ids)
def test_the_namespaces_are_the_commands(argv: list[str]) -> None:
    namespace, _, _ = _parse(build_parser(command_in(argv)), argv)
    assert isinstance(namespace, argparse.Namespace)
    assert namespace.command == command_in(argv)


@pytest.mark.parametrize("argv", UNNAMED, ids=_ids)
def test_without_a_certain_command_main_builds_every_command(argv: list[str]) -> None:
    assert command_in(argv) is None


def test_a_global_option_value_is_never_taken_for_the_command() -> None:
    assert command_in(["--config", "run", "build"]) == "build"
    assert command_in(["--engine", "run", "config"]) == "config"
    assert command_in(["--engine=run", "--config=build", "--debug", "setup", "run"]) == "setup"


def test_every_command_and_alias_has_an_adder_in_help_order() -> None:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(commands.choices) == list(_COMMANDS) == COMMANDS
    for name in COMMANDS:
        (narrow,) = [a for a in build_parser(name)._actions if isinstance(a, argparse._SubParsersAction)]
        aliases = ["images", "list-custom"]
        assert list(narrow.choices) == (aliases if name in aliases else [name])


def test_main_builds_only_the_command_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str | None, bool]] = []

    def spy(command: str | None = None, *, listing: bool = False) -> argparse.ArgumentParser:
        built.append((command, listing))
        return build_parser(command, listing=listing)

    monkeypatch.setattr(cli_main, "build_parser", spy)
    for argv in (["--engine", "docker", "run", "--help"], ["bogus"], ["--help"], ["--config", "run"]):
        cli_main.main(argv, stdout=io.StringIO(), stderr=io.StringIO())
    # no command: names and summaries only; a command name command_in() cannot place: everything
    assert built == [("run", False), (None, True), (None, True), (None, False)]


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli_main.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("columns", ["40", "80", "200"])
@pytest.mark.parametrize("argv", [["run", "--help"], ["--help"], ["bogus"], ["--debug", "build", "-h"]], ids=_ids)
def test_main_prints_what_the_full_parser_prints(
    argv: list[str], columns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    assert _main(argv) == _parse(build_parser(), argv)
    assert _main([]) == (0, build_parser().format_help(), "")


def test_an_unknown_command_lists_every_command() -> None:
    status, _, err = _main(["bogus"])
    assert status == 2
    assert err.endswith(
        "isol8: error: argument COMMAND: invalid choice: 'bogus' (choose from 'run', 'build', 'images', "
        "'list-custom', 'resolve', 'setup', 'serve', 'mcp', 'config', 'doctor', 'cleanup')\n"
    )


@pytest.mark.parametrize("columns", [None, "", "57", "0", "-3", "wide", "1"])
def test_help_width_is_argparse_own(columns: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert _terminal_columns() == shutil.get_terminal_size().columns
    assert Formatter("isol8")._width == argparse.RawDescriptionHelpFormatter("isol8")._width


@pytest.mark.parametrize(("columns", "size", "width"), [(None, 123, 123), ("33", 123, 33), (None, 0, 80)])
def test_help_width_on_a_terminal_is_argparse_own(
    columns: str | None, size: int, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal of 0 columns (an unset window size) counts as 80, as in shutil."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    leader, follower = pty.openpty()
    termios.tcsetwinsize(follower, (24, size))
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "__stdout__", terminal)
        assert _terminal_columns() == shutil.get_terminal_size().columns == width
        full = build_parser()
        assert _parse(build_parser("run"), ["run", "-h"]) == _parse(full, ["run", "-h"])
        with monkeypatch.context() as m:
            m.setattr(Formatter, "__init__", lambda self, prog: argparse.HelpFormatter.__init__(self, prog, 2, 32))
            argparse_width = _parse(build_parser(), ["run", "-h"])
        assert _parse(full, ["run", "-h"]) == argparse_width
    os.close(leader)


@pytest.mark.parametrize("stdout", [None, io.StringIO()], ids=["none", "no-fileno"])
def test_help_width_without_a_usable_stdout_is_80(stdout: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "__stdout__", stdout)
    assert _terminal_columns() == shutil.get_terminal_size().columns == 80


NO_COMMAND = [[], ["--help"], ["-h"], ["--version"], ["bogus"], ["--engine", "docker"], ["--debug", "-h"], ["--bogus"]]


@pytest.mark.parametrize("argv", NO_COMMAND, ids=_ids)
def test_the_listing_parser_answers_an_argv_without_a_command_as_the_full_one(argv: list[str]) -> None:
    assert not set(argv) & P.COMMANDS
    assert _parse(build_parser(listing=True), argv) == _parse(build_parser(), argv)


def test_every_command_has_a_summary_and_the_listing_knows_every_name() -> None:
    assert P.COMMANDS == set(_COMMANDS) == set(COMMANDS)
    listed = build_parser()._subparsers._group_actions[0]._choices_actions  # type: ignore[union-attr]
    assert {action.dest: action.help for action in listed} == SUMMARIES
