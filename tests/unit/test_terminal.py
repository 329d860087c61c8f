"""The CLI terminal filter and output sinks: what reaches a terminal, split at every byte; pipes and files exact."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isol8.frontends.cli.output import ProgramOutput, program_outputs
from isol8.frontends.cli.terminal import RESET, TerminalFilter, escape


def filter_chunks(chunks: Sequence[bytes]) -> bytes:
    """The filtered text, less the reset flush() adds exactly when a colour sequence went through."""
    f = TerminalFilter()
    out = b"".join(f.feed(c) for c in chunks) + f.flush()
    if b"\x1b[" in out:
        assert out.endswith(RESET), out
        out = out[: -len(RESET)]
    return out


def every_split(data: bytes, parts: int) -> list[list[bytes]]:
    out = []
    for cuts in itertools.combinations(range(1, len(data)), parts - 1):
        bounds = (0, *cuts, len(data))
        out.append([data[a:b] for a, b in itertools.pairwise(bounds)])
    return out


ESCAPED = [
    ("title-osc0", b"\x1b]0;pwned\x07", rb"\x1b]0;pwned\x07"),
    ("title-osc2-st", b"\x1b]2;pwned\x1b\\", rb"\x1b]2;pwned\x1b" + b"\\"),
    ("osc52-clipboard", b"\x1b]52;c;cm0gLXJmIH4K\x07", rb"\x1b]52;c;cm0gLXJmIH4K\x07"),
    ("alt-screen", b"\x1b[?1049h", rb"\x1b[?1049h"),
    ("cursor-up", b"\x1b[2A", rb"\x1b[2A"),
    ("cursor-home-clear", b"\x1b[H\x1b[2J", rb"\x1b[H\x1b[2J"),
    ("reset", b"\x1bc", rb"\x1bc"),
    ("dcs", b"\x1bP+q544e\x1b\\", rb"\x1bP+q544e\x1b" + b"\\"),
    ("carriage-return", b"100%\rdone", rb"100%\x0ddone"),
    ("bell", b"ding\x07", rb"ding\x07"),
    ("backspace", b"abc\x08\x08X", rb"abc\x08\x08X"),
    ("nul-and-del", b"a\x00b\x7fc", rb"a\x00b\x7fc"),
    ("c1-csi-utf8", "\u009b31m".encode(), rb"\u009b31m"),
    ("c1-osc-utf8", "\u009d0;t\u009c".encode(), rb"\u009d0;t\u009c"),
    ("c1-nel-utf8", "\u0085".encode(), rb"\u0085"),
    ("raw-8bit-csi", b"\x9b2J", rb"\x9b2J"),
    ("invalid-bytes", b"\xff\xfe\xc0\xaf", rb"\xff\xfe\xc0\xaf"),
    ("sgr-with-junk", b"\x1b[31;?m", rb"\x1b[31;?m"),
    ("sgr-too-long", b"\x1b[" + b"1;" * 40 + b"m", rb"\x1b[" + b"1;" * 40 + b"m"),
    ("lone-esc-at-end", b"end\x1b", rb"end\x1b"),
    ("esc-bracket-at-end", b"end\x1b[31", rb"end\x1b[31"),
    ("half-character-at-end", b"end\xe2\x82", rb"end\xe2\x82"),
]
KEPT = [
    ("plain", b"hello, world\n"),
    ("tab-newline", b"a\tb\nc\n"),
    ("unicode", "caf\u00e9 \u20ac \U0001f600 \u00a0\n".encode()),
    ("sgr-red", b"\x1b[31mred\x1b[0m"),
    ("sgr-empty", b"\x1b[mplain"),
    ("sgr-256", b"\x1b[38;5;208morange\x1b[39m"),
    ("sgr-truecolor-colons", b"\x1b[38:2::255:100:0mx\x1b[0m"),
    ("sgr-bold-underline", b"\x1b[1;4mtitle\x1b[22;24m\n"),
]


@pytest.mark.parametrize(("data", "shown"), [(d, s) for _, d, s in ESCAPED], ids=[i for i, _, _ in ESCAPED])
def test_controls_are_shown_escaped_whole_and_split_at_every_byte(data: bytes, shown: bytes) -> None:
    assert filter_chunks([data]) == shown
    for chunks in every_split(data, 2):
        assert filter_chunks(chunks) == shown, chunks
    assert filter_chunks([data[i : i + 1] for i in range(len(data))]) == shown
    assert b"\x1b" not in shown and b"\x07" not in shown and b"\r" not in shown and b"\xc2\x9b" not in shown


@pytest.mark.parametrize("data", [d for _, d in KEPT], ids=[i for i, _ in KEPT])
def test_text_and_colours_pass_unchanged_whole_and_split_at_every_byte(data: bytes) -> None:
    assert filter_chunks([data]) == data
    for chunks in every_split(data, 2):
        assert filter_chunks(chunks) == data, chunks
    if len(data) <= 24:
        for chunks in every_split(data, 3):
            assert filter_chunks(chunks) == data, chunks


def test_a_mixed_stream_split_in_three_at_every_pair_of_boundaries() -> None:
    data = b"\x1b[1mA\x1b]0;t\x07\xc2\x9b\xe2\x82\xac\r\n"
    shown = b"\x1b[1mA" + rb"\x1b]0;t\x07\u009b" + "\u20ac".encode() + rb"\x0d" + b"\n"
    assert filter_chunks([data]) == shown
    for chunks in every_split(data, 3):
        assert filter_chunks(chunks) == shown, chunks


def test_an_unfinished_sequence_waits_for_the_next_chunk() -> None:
    f = TerminalFilter()
    assert f.feed(b"a\x1b[3") == b"a"
    assert f.feed(b"1mred") == b"\x1b[31mred"
    assert f.feed(b"\xe2\x82") == b""
    assert f.feed(b"\xac") == "\u20ac".encode()
    assert f.feed(b"\x1b") == b""
    assert f.feed(b"]0;x") == rb"\x1b]0;x"
    assert f.flush() == RESET  # red went through: reset at the end


def is_safe_for_a_terminal(shown: bytes) -> bool:
    """No control byte but tab and newline, ESC only opening a colour sequence, no C1 character."""
    rest = re.sub(rb"\x1b\[[0-9;:]*m", b"", shown)
    if any(b < 0x20 and b not in (0x09, 0x0A) or b == 0x7F for b in rest):
        return False
    text = rest.decode("utf-8")  # strict: every invalid byte was escaped
    return not any(0x80 <= ord(c) <= 0x9F for c in text)


@settings(max_examples=1000, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=80),
        st.lists(st.sampled_from([b"\x1b", b"[", b"]", b"31", b";", b"m", b"?", b"\x07", b"\xc2", b"\x9b", b"x"])).map(
            b"".join
        ),
        st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    cuts=st.lists(st.integers(0, 90), max_size=6),
)
def test_random_bytes_in_random_chunks_give_the_same_safe_text(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    whole = escape(data)
    assert filter_chunks(chunks) == whole
    assert is_safe_for_a_terminal(whole), whole


# ---- ProgramOutput: the filter only on a terminal, and never with --raw ----------------------------


class Tty(io.TextIOWrapper):
    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")

    def isatty(self) -> bool:
        return True

    def data(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()  # type: ignore[attr-defined,no-any-return]


class Pipe(Tty):
    def isatty(self) -> bool:
        return False


NASTY = b"\x1b]52;c;aGk=\x07\x1b[?1049h\x1b[31mred\x1b[0m\r\n\xff\xc2\x9b"


def test_a_terminal_gets_escaped_controls_and_colours() -> None:
    tty = Tty()
    out = ProgramOutput(tty)
    out.write(NASTY[:3])
    out.write(NASTY[3:])
    out.close()
    shown = rb"\x1b]52;c;aGk=\x07\x1b[?1049h" + b"\x1b[31mred\x1b[0m" + rb"\x0d" + b"\n" + rb"\xff\u009b"
    assert tty.data() == shown + RESET


def test_raw_passes_everything_to_a_terminal() -> None:
    tty = Tty()
    out = ProgramOutput(tty, raw=True)
    out.write(NASTY)
    out.close()
    assert tty.data() == NASTY


def test_a_pipe_gets_the_bytes_unchanged() -> None:
    pipe = Pipe()
    outputs = program_outputs(pipe, pipe)
    outputs["stdout"].write(NASTY)
    outputs["stderr"].write(bytes(range(256)))
    for o in outputs.values():
        o.close()
    assert pipe.data() == NASTY + bytes(range(256))


def test_close_shows_what_was_held_back_before_isol8s_own_message() -> None:
    tty = Tty()
    out = ProgramOutput(tty)
    out.write(b"tail\x1b[3")
    out.close()
    tty.write("isol8: message\n")
    assert tty.data() == rb"tail\x1b[3" + b"isol8: message\n"


def test_attributes_the_program_set_are_reset_before_isol8_writes() -> None:
    """Conceal (SGR 8) left on would hide isol8's own messages and the shell prompt after them."""
    f = TerminalFilter()
    assert f.feed(b"out\x1b[8m") == b"out\x1b[8m"
    assert f.flush() == RESET
    plain = TerminalFilter()
    assert plain.feed(b"plain text\n") + plain.flush() == b"plain text\n"


@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200f", "\u061c"])
def test_bidirectional_controls_are_shown_escaped(char: str) -> None:
    data = f"good{char}evil é".encode()
    assert escape(data) == b"good\\u%04xevil \xc3\xa9" % ord(char)
    for chunks in every_split(data, 2):
        assert filter_chunks(chunks) == escape(data)
