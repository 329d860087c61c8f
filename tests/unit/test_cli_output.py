"""`isol8 run` output and secret flags in process: --out opened first, --secret NAME, --secret-file; no engine runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from isol8.errors import UsageError
from isol8.frontends.cli.app import App
from isol8.frontends.cli.inputs import parse_secrets
from isol8.frontends.cli.output import open_out
from isol8.frontends.cli.run import request_from_args
from tests.conftest import CliResult

RunCli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def _isolated(isolated: Path) -> Path:
    return isolated


@pytest.fixture(autouse=True)
def _no_engine(engine_calls: list[str]) -> list[str]:
    return engine_calls


def unwritable(kind: str, isolated: Path) -> str:
    if kind == "missing-folder":
        return str(isolated / "no-such-folder" / "out.txt")
    if kind == "a-directory":
        (isolated / "adir").mkdir()
        return str(isolated / "adir")
    if os.geteuid() != 0:
        locked = isolated / "locked"
        locked.mkdir(mode=0o500)
        return str(locked / "out.txt")
    if os.path.exists("/sys/kernel/vmcoreinfo"):  # a read-only sysfs file: refused even to root
        return "/sys/kernel/vmcoreinfo"
    pytest.skip("running as root without a file root cannot write")


@pytest.mark.parametrize("kind", ["missing-folder", "a-directory", "no-permission"])
@pytest.mark.parametrize("mode", [[], ["--no-stream"], ["--json"], ["--host", "http://127.0.0.1:9"]])
def test_out_that_cannot_be_written_is_exit_2_before_any_engine_call(
    run_cli: RunCli, isolated: Path, engine_calls: list[str], kind: str, mode: list[str]
) -> None:
    path = unwritable(kind, isolated)
    status, out, err = run_cli("run", "-e", "print(1)", *mode, "--out", path)
    assert (status, out) == (2, ""), err
    assert err.startswith(f"isol8: error: --out: cannot write {path}: ")
    assert "internal error" not in err
    assert engine_calls == []


def test_out_is_not_touched_when_the_flags_are_wrong(run_cli: RunCli, isolated: Path) -> None:
    status, _, err = run_cli("run", "-e", "print(1)", "--timeout", "soon", "--out", "out.txt")
    assert status == 2, err
    assert not (isolated / "out.txt").exists()


def test_open_out_creates_and_empties_the_file_before_anything_runs(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old contents")
    f = open_out(str(target))
    assert f is not None
    with f:
        assert target.read_bytes() == b""
        f.write(b"\x80\xff")
    assert target.read_bytes() == b"\x80\xff"
    assert open_out(None) is None


# ---- --secret NAME, --secret NAME=VALUE, --secret-file NAME=PATH -----------------------------------


def test_a_secret_taken_from_the_environment_leaves_it() -> None:
    """Nothing isol8 starts afterwards (engine clients, the reaper's watcher, builds) inherits it."""
    environ = {"TOKEN": "t", "KEEP": "k"}
    assert parse_secrets(["TOKEN", "TOKEN", "OTHER=o"], [], environ) == {"TOKEN": "t", "OTHER": "o"}
    assert environ == {"KEEP": "k"}


def test_secret_forms(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("from-file\n")
    (tmp_path / "b").write_bytes(b"crlf\r\n")
    (tmp_path / "c").write_bytes(b"two\n\n")
    (tmp_path / "d").write_bytes(b"none")
    (tmp_path / "e").write_bytes("pâté".encode())
    files = [f"{n.upper()}={tmp_path / n}" for n in "abcde"]
    got = parse_secrets(["TOKEN", "INLINE=x=y", "EMPTY"], files, {"TOKEN": "from-env", "EMPTY": ""})
    assert got == {
        "TOKEN": "from-env",
        "INLINE": "x=y",
        "EMPTY": "",
        "A": "from-file",
        "B": "crlf",
        "C": "two\n",  # one trailing newline removed, no more
        "D": "none",
        "E": "pâté",
    }


@pytest.mark.parametrize(
    ("values", "files", "fragments"),
    [
        (["UNSET_NAME"], [], ["--secret UNSET_NAME", "'UNSET_NAME' is not set"]),
        (["=s3cr3t"], [], ["--secret: expected NAME or NAME=VALUE"]),
        ([], ["NAME"], ["--secret-file: expected NAME=PATH", "'NAME'"]),
        ([], ["NAME="], ["--secret-file: expected NAME=PATH"]),
        ([], ["=path"], ["--secret-file: expected NAME=PATH"]),
        ([], ["K={missing}"], ["--secret-file K: cannot read", "No such file or directory"]),
        ([], ["K={dir}"], ["--secret-file K: cannot read", "Is a directory"]),
        ([], ["K={binary}"], ["--secret-file K:", "is not UTF-8 text"]),
    ],
)
def test_secret_errors(tmp_path: Path, values: list[str], files: list[str], fragments: list[str]) -> None:
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    paths = {"missing": tmp_path / "missing", "dir": tmp_path, "binary": tmp_path / "binary"}
    with pytest.raises(UsageError) as caught:
        parse_secrets(values, [f.format(**paths) for f in files], {"OTHER": "x"})
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "s3cr3t" not in str(caught.value)  # never echoes a value


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--secret", "ISOL8_TEST_UNSET"], ["--secret ISOL8_TEST_UNSET", "'ISOL8_TEST_UNSET' is not set"]),
        (["--secret-file", "TOKEN=missing.txt"], ["--secret-file TOKEN: cannot read missing.txt"]),
        (["--secret-file", "TOKEN"], ["expected NAME=PATH"]),
        (["--secret-file", "1BAD=token.txt"], ["'1BAD'"]),
        (["--secret-file", "TOKEN=nul.txt"], ["TOKEN", "NUL"]),
    ],
)
def test_run_secret_usage_errors_return_2_without_an_engine(
    run_cli: RunCli, isolated: Path, engine_calls: list[str], argv: list[str], fragments: list[str]
) -> None:
    (isolated / "token.txt").write_text("abc\n")
    (isolated / "nul.txt").write_bytes(b"a\0b")
    status, out, err = run_cli("run", "-e", "print(1)", *argv)
    assert (status, out) == (2, ""), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "abc" not in err and "internal error" not in err
    assert engine_calls == []


def test_secret_from_the_environment_reaches_the_request(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from isol8.core.runner import RunRequest
    from isol8.frontends.cli.parser import build_parser

    monkeypatch.setenv("MY_TOKEN", "env-value")
    (isolated / "t.txt").write_text("file-value\n")
    args = build_parser().parse_args(
        ["run", "-e", "1", "--secret", "MY_TOKEN", "--secret", "OTHER=inline", "--secret-file", "FILE_TOKEN=t.txt"]
    )
    request = request_from_args(App(args=args, stdin=None, stdout=io.StringIO(), stderr=io.StringIO()))
    assert isinstance(request, RunRequest)
    assert dict(request.secrets) == {"MY_TOKEN": "env-value", "OTHER": "inline", "FILE_TOKEN": "file-value"}


def test_setup_scripts_reach_the_request_joined_in_order(isolated: Path) -> None:
    import io

    from isol8.frontends.cli.parser import build_parser

    def setup_of(*flags: str) -> str | None:
        args = build_parser().parse_args(["run", "-e", "1", *flags])
        return request_from_args(App(args=args, stdin=None, stdout=io.StringIO(), stderr=io.StringIO())).setup

    assert setup_of() is None
    assert setup_of("--setup", "echo 'a b' > x") == "echo 'a b' > x"
    assert setup_of("--setup", "cd sub", "--setup", "make") == "cd sub\nmake"
