"""What the program's output may do to a terminal: colours, newlines and tabs; every other control is shown escaped."""

from __future__ import annotations

import re

# Longest parameter string of a colour sequence passed through; a longer one is shown escaped.
SGR_PARAMS_MAX = 64
_UTF8_MULTIBYTE = (
    rb"[\xc2][\xa0-\xbf]|[\xc3-\xdf][\x80-\xbf]"  # U+0080..U+009F (the C1 controls) excluded
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
# Bidirectional controls (U+061C, U+200E/F, U+202A..U+202E, U+2066..U+2069) reorder what the
# terminal shows, so text can read other than it is (CVE-2021-42574, "Trojan Source").
_BIDI = rb"\xd8\x9c|\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]"
_TOKEN = re.compile(
    rb"(?P<text>(?:(?!" + _BIDI + rb")(?:[\t\n\x20-\x7e]|" + _UTF8_MULTIBYTE + rb"))+)"
    rb"|(?P<sgr>\x1b\[[0-9;:]{0," + str(SGR_PARAMS_MAX).encode() + rb"}m)"
    rb"|(?P<c1>\xc2[\x80-\x9f])"
    rb"|(?P<bidi>" + _BIDI + rb")"
    rb"|(?P<byte>[\x00-\xff])"
)
# The start of a colour sequence or of a valid UTF-8 character, at the very end of a chunk.
_UNFINISHED = re.compile(
    rb"(?:\x1b(?:\[[0-9;:]{0," + str(SGR_PARAMS_MAX).encode() + rb"})?"
    rb"|[\xc2-\xdf]|\xe0(?:[\xa0-\xbf])?|[\xe1-\xec\xee\xef](?:[\x80-\xbf])?|\xed(?:[\x80-\x9f])?"
    rb"|\xf0(?:[\x90-\xbf][\x80-\xbf]?)?|[\xf1-\xf3](?:[\x80-\xbf][\x80-\xbf]?)?|\xf4(?:[\x80-\x8f][\x80-\xbf]?)?"
    rb")\Z"
)
_UNFINISHED_MAX = 2 + SGR_PARAMS_MAX


def _render(match: re.Match[bytes]) -> bytes:
    kind = match.lastgroup
    if kind in ("text", "sgr"):
        return match.group()
    if kind == "c1":
        return b"\\u%04x" % (match.group()[1])
    if kind == "bidi":
        return b"\\u%04x" % ord(match.group().decode())
    return b"\\x%02x" % match.group()[0]


def escape(data: bytes) -> bytes:
    """data with every control but SGR colours, newline and tab (and every invalid byte) shown as text.

    A control or invalid byte becomes `\\xNN` (ESC is `\\x1b`, BEL `\\x07`, CR `\\x0d`, a raw CSI
    `\\x9b`) and a C1 control character U+0080..U+009F becomes `\\u00NN`; printable text (any
    valid UTF-8) and `ESC [ params m` pass unchanged.
    """
    return _TOKEN.sub(_render, data)


RESET = b"\x1b[0m"


class TerminalFilter:
    """escape() over a stream of chunks: a sequence or character split across chunks waits for its end."""

    def __init__(self) -> None:
        self.pending = b""
        self.styled = False  # a colour sequence went through: reset before isol8 writes

    def feed(self, data: bytes) -> bytes:
        buf = self.pending + data
        unfinished = _UNFINISHED.search(buf, max(len(buf) - _UNFINISHED_MAX, 0))
        cut = unfinished.start() if unfinished else len(buf)
        self.pending = buf[cut:]
        shown = escape(buf[:cut])
        if not self.styled and b"\x1b[" in shown:
            self.styled = True
        return shown

    def flush(self) -> bytes:
        """What is held back at the end of the stream, shown escaped (it never finished), then a
        reset if the program set colours or attributes (conceal, say), so isol8's own words show."""
        rest, self.pending = self.pending, b""
        shown = escape(rest)
        if self.styled or b"\x1b[" in shown:
            self.styled = False
            shown += RESET
        return shown
