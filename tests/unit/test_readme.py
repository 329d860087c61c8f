"""Every isol8 command in the README's code blocks is a valid invocation: the parser accepts it."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from isol8.frontends.cli.parser import build_parser, command_in

README = Path(__file__).parents[2] / "README.md"
_BLOCK = re.compile(r"^```(?:sh|console|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SEPARATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<"}


def isol8_commands(markdown: str) -> list[list[str]]:
    """The argv (after `isol8`) of each isol8 command in the shell code blocks."""
    found = []
    for block in _BLOCK.findall(markdown):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            if line.startswith("$ "):
                line = line[2:]
            elif block.lstrip().startswith("$ "):
                continue  # a console block's output line
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            segment: list[str] = []
            for word in [*lexer, ";"]:
                if word in _SEPARATORS:
                    words = [w for w in segment if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w)]
                    if words and Path(words[0]).name == "isol8":
                        found.append(words[1:])
                    segment = []
                else:
                    segment.append(word)
    return found


def test_the_readme_has_isol8_commands_to_check() -> None:
    assert len(isol8_commands(README.read_text(encoding="utf-8"))) >= 15


@pytest.mark.parametrize("argv", isol8_commands(README.read_text(encoding="utf-8")), ids=" ".join)
def test_each_readme_command_parses(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            build_parser(command_in(argv)).parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0, err.getvalue()


def test_the_check_catches_a_wrong_flag() -> None:
    [argv] = isol8_commands("```sh\nFOO=1 isol8 run --no-such-flag x.py | head  # comment\n```\n")
    assert argv == ["run", "--no-such-flag", "x.py"]
    with pytest.raises(SystemExit) as caught, contextlib.redirect_stderr(io.StringIO()):
        build_parser(command_in(argv)).parse_args(argv)
    assert caught.value.code == 2
