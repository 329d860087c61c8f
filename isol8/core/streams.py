"""What comes out of the container: the wrapper's trailer taken from stderr, secrets masked, each stream capped."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TRAILER_MARK = b"\x1eisol8:"
STATUS_MAX = 4096


class Usage(NamedTuple):
    """What the run's container used, as its cgroup counts it; None where the kernel keeps no figure."""

    cpu_time_ms: int | None = None  # CPU time of the program (and what it started), user + system
    memory_peak_bytes: int | None = None  # the container's peak memory, /sandbox and /tmp included
    pids_peak: int | None = None  # the most processes and threads at once (cgroup v2 only)


class Trailer(NamedTuple):
    kind: str  # "exit" or "setup"
    exit_code: int = 0
    oom_kills: int = 0
    message: str = ""
    usage: Usage = Usage()


def _figure(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None  # "²" is a digit too, not a number


class TrailerFilter:
    """Removes the wrapper's status lines (marked with the run's nonce) from stderr and parses them.

    The program can learn the nonce (it may read the wrapper's memory), so only what it cannot
    forge counts: the first start line (the program starts after it), setup lines before that,
    exit lines after it; a marked line is at most STATUS_MAX bytes, longer ones pass as output.
    """

    def __init__(self, nonce: str, files_max: int = 0) -> None:
        """files_max: the most base64 bytes of output files to take (0: the run asked for none)."""
        self.mark = TRAILER_MARK + nonce.encode() + b":"
        self.pending = b""
        self.trailer: Trailer | None = None
        self.started_at: float | None = None
        self.files_max = files_max
        self.files: bytearray | None = None  # the output files' block (base64), once it began
        self.files_complete = False  # its end line came
        self._collecting = False

    def feed(self, data: bytes) -> bytes:
        buf = self.pending + data
        self.pending = b""
        out: list[bytes] = []
        while True:
            if self._collecting:  # base64 until the next marked line (base64 never holds the mark)
                at = buf.find(self.mark)
                end = len(buf) - _partial_suffix(buf, self.mark) if at < 0 else at
                self._collect(buf[:end])
                if at < 0:
                    self.pending = buf[end:]
                    return b"".join(out)
                self._collecting = False
                buf = buf[at:]
            at = buf.find(self.mark)
            if at < 0:
                break
            end = buf.find(b"\n", at, at + STATUS_MAX)
            if end < 0:
                if len(buf) - at < STATUS_MAX:
                    self.pending = buf[at:]
                    return b"".join(out) + buf[:at]
                out.append(buf[: at + 1])  # too long for a status line: output, not a line of isol8's
                buf = buf[at + 1 :]
                continue
            self._parse(buf[at + len(self.mark) : end].decode("utf-8", "replace"))
            out.append(buf[:at])
            buf = buf[end + 1 :]
        keep = _partial_suffix(buf, self.mark)
        if keep:
            self.pending, buf = buf[-keep:], buf[:-keep]
        return b"".join(out) + buf

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return rest

    def _parse(self, text: str) -> None:
        kind, _, rest = text.partition(":")
        if kind == "start" and self.started_at is None:
            self.started_at = time.monotonic()
        elif kind == "exit" and self.started_at is not None:
            code, oom, cpu_us, memory, pids = (rest.split(":") + [""] * 4)[:5]
            try:
                self.trailer = Trailer("exit", int(code), int(oom or 0))
            except ValueError:
                self.trailer = None
                return
            cpu = _figure(cpu_us)
            usage = Usage(None if cpu is None else cpu // 1000, _figure(memory), _figure(pids))
            self.trailer = self.trailer._replace(usage=usage)
        elif kind == "setup" and self.started_at is None:
            self.trailer = Trailer("setup", message=rest)
        elif kind == "files" and self.started_at is not None and self.files_max:
            self.files, self.files_complete, self._collecting = bytearray(), False, True  # the last block counts
        elif kind == "files-end" and self.files is not None:
            self.files_complete = True

    def _collect(self, data: bytes) -> None:
        assert self.files is not None
        self.files += data[: max(self.files_max - len(self.files), 0)]


def _partial_suffix(buf: bytes, mark: bytes) -> int:
    """Length of the longest suffix of buf that is a proper prefix of mark."""
    for n in range(min(len(mark) - 1, len(buf)), 0, -1):
        if buf.endswith(mark[:n]):
            return n
    return 0


class Masker:
    """Replaces secret values with *** even when a value is split across chunks.

    One regex of all the values, longest first, so a value that contains another is masked
    whole. The last (longest - 1) bytes stay unmasked in `pending` until more data shows
    whether they start a value; a match that starts before them lies wholly in the buffer.
    """

    def __init__(self, values: Iterable[str]) -> None:
        secrets = sorted({v.encode() for v in values if v}, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(s) for s in secrets)) if secrets else None
        self.keep = max((len(s) for s in secrets), default=1) - 1
        self.pending = b""

    def mask(self, data: bytes) -> bytes:
        return self.pattern.sub(b"***", data) if self.pattern else data

    def feed(self, data: bytes) -> bytes:
        if self.pattern is None:
            return data
        buf = self.pending + data
        boundary = len(buf) - self.keep
        out: list[bytes] = []
        pos = 0
        for match in self.pattern.finditer(buf):
            if match.start() >= boundary:
                break
            out += [buf[pos : match.start()], b"***"]
            pos = match.end()
        if pos < boundary:
            out.append(buf[pos:boundary])
            pos = boundary
        self.pending = buf[pos:]
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self.pending = self.mask(self.pending), b""
        return rest


# How many bytes a character with this lead byte takes, and the range its second byte must be in
# (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
_SECOND_BYTE = {
    **{lead: (2, 0x80, 0xBF) for lead in range(0xC2, 0xE0)},
    0xE0: (3, 0xA0, 0xBF),
    **{lead: (3, 0x80, 0xBF) for lead in (*range(0xE1, 0xED), 0xEE, 0xEF)},
    0xED: (3, 0x80, 0x9F),
    0xF0: (4, 0x90, 0xBF),
    0xF1: (4, 0x80, 0xBF),
    0xF2: (4, 0x80, 0xBF),
    0xF3: (4, 0x80, 0xBF),
    0xF4: (4, 0x80, 0x8F),
}


def _incomplete_utf8_tail(data: bytes) -> int:
    """How many trailing bytes (0 to 3) are the start of a valid UTF-8 character that is not complete yet.

    Invalid bytes are just bytes: only a lead byte followed by fewer continuation bytes than it
    needs (each in its allowed range) counts, so invalid output is never held back.
    """
    for back in range(1, min(3, len(data)) + 1):
        if 0x80 <= data[-back] <= 0xBF:
            continue  # a continuation byte: look further back for the lead byte
        return back if _continues(data[-back:]) is None else 0
    return 0


def _continues(head: bytes) -> bool | None:
    """Whether head (a lead byte and what follows) is one valid character: None while it could still become one."""
    rule = _SECOND_BYTE.get(head[0])
    if rule is None:
        return False
    need, low, high = rule
    for i, byte in enumerate(head[1:need], 1):
        if not (low <= byte <= high if i == 1 else 0x80 <= byte <= 0xBF):
            return False
    return True if len(head) >= need else None


class Limiter:
    """Lets through at most `limit` bytes, never cutting a valid UTF-8 character in half.

    A valid character split across chunks is held back until it is complete. At the limit, the
    last 1 to 3 bytes are dropped only when they start a valid character that goes on past the
    limit; to know, they wait for the bytes after the limit (or the end of the stream). Bytes
    that are not UTF-8 are counted and kept like any others, so at least limit - 3 bytes stay.
    """

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.truncated = False
        self.carry = b""  # under the limit: an incomplete character; past it: the undecided last bytes
        self.after = b""  # past the limit: the first bytes beyond it, while the carry is undecided

    def feed(self, data: bytes) -> bytes:
        if self.truncated:
            return self._decide(data) if self.carry else b""
        data, self.carry = self.carry + data, b""
        if len(data) <= self.left:
            held = _incomplete_utf8_tail(data)
            if held:
                data, self.carry = data[:-held], data[-held:]
            self.left -= len(data)
            return data
        kept, beyond = data[: self.left], data[self.left :]
        self.truncated = True
        self.left = 0
        tail = _incomplete_utf8_tail(kept)
        if not tail:
            return kept
        self.carry = kept[-tail:]
        return kept[:-tail] + self._decide(beyond)

    def _decide(self, beyond: bytes) -> bytes:
        self.after = (self.after + beyond)[:3]
        cut = _continues(self.carry + self.after)
        if cut is None:
            return b""
        kept, self.carry, self.after = self.carry, b"", b""
        return b"" if cut else kept

    def flush(self) -> bytes:
        """The held-back bytes at the end of the stream (an incomplete character is passed on as is)."""
        rest, self.carry, self.after = self.carry, b"", b""
        if not rest:
            return b""
        if not self.truncated:
            self.left -= len(rest)  # held back under the limit: it fits
        return rest


class ProgramOutput:
    """The program's two streams on their way to the caller, and the bytes kept of each.

    stderr before the program starts is the engine's or the wrapper's: held back, and passed on
    only once the program runs (else it belongs in the error isol8 reports)."""

    def __init__(self, nonce: str, secrets: Iterable[str], max_output: int, files_max: int = 0) -> None:
        self.secrets = tuple(secrets)
        self.trailer = TrailerFilter(nonce, files_max)
        self._maskers = {name: Masker(self.secrets) for name in ("stdout", "stderr")}
        self._limiters = {name: Limiter(max_output) for name in ("stdout", "stderr")}
        self.kept: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.early: list[bytes] = []

    def feed(self, stream: str, data: bytes) -> bytes:
        """What of data to pass on now (maybe nothing)."""
        if stream == "stderr":
            data = self.trailer.feed(data)
            if self.trailer.started_at is None:
                self.early.append(data)
                return b""
            if self.early:
                data = b"".join(self.early) + data
                self.early.clear()
        return self._keep(stream, self._limiters[stream].feed(self._maskers[stream].feed(data)))

    def flush(self, stream: str) -> bytes:
        """What the filters held back, once the stream has ended."""
        tail = self.trailer.flush() if stream == "stderr" else b""
        masker, limiter = self._maskers[stream], self._limiters[stream]
        return self._keep(stream, limiter.feed(masker.feed(tail) + masker.flush()) + limiter.flush())

    def _keep(self, stream: str, data: bytes) -> bytes:
        if data:
            self.kept[stream].append(data)
        return data

    @property
    def truncated(self) -> bool:
        return self._limiters["stdout"].truncated or self._limiters["stderr"].truncated

    def stdout_bytes(self) -> bytes:
        return b"".join(self.kept["stdout"])

    def stderr_bytes(self) -> bytes:
        """What was passed on, then what was held back because the program never started (masked)."""
        return b"".join(self.kept["stderr"]) + Masker(self.secrets).mask(b"".join(self.early))
