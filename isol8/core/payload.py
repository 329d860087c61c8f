"""What crosses the container boundary: the wrapper script, the tar payload on stdin, and output filters."""

from __future__ import annotations

import io
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from isol8.errors import UsageError

TYPE_CHECKING = False  # typing costs ~8 ms to import: annotations only
if TYPE_CHECKING:
    from typing import Any

SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv"})

# The container's entrypoint (bash -c WRAPPER isol8 WORKDIR BACKSTOP CMD...). From stdin it reads
# one header line "<nonce> <tar bytes> <code bytes> <tar|empty|read|head> <code name> <env count>
# <reap>", then the program's environment as NUL-terminated NAME=VALUE entries, then the tar (the
# --files folder, unpacked into /sandbox), then the code file (small code with the `read`
# builtin, larger code with GNU head -c, which never reads past its count); the rest of stdin is
# the program's. The user's environment never reaches this shell: it gets only the image's, runs
# its own tools from the system folders (never /sandbox), and hands the user's variables to the
# program's exec alone. It writes "<RS>isol8:<nonce>:start" to stderr just before CMD starts and
# "<RS>isol8:<nonce>:exit:<code>:<oom kills>" when it ends. The program shares this shell's uid
# and can read or write its memory, so nothing it could forge decides anything: isol8 takes only
# the first start line (the program does not exist before it), setup lines only before it, and
# an exit line only when it agrees with the exit status the engine reports. With reap 1 (reap 0:
# a session that keeps background processes), `kill -KILL -1` before and after the program ends
# the sandbox user's other processes, PID 1 spared; in a session what holds is the root sweep
# that follows every execution (isol8/sandbox.py, sweep_argv), since the program can disturb this
# shell. A background `sleep BACKSTOP; kill -KILL -1` is the last of isol8's backstops after the
# watcher outside the sandbox (isol8/reaper.py) and, on podman, the engine's own --timeout.
WRAPPER = r"""
IFS=' ' read -r nonce tarsize codesize mode name envcount reap || exit 125
program_path=$PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "$reap" = 0 ] || kill -KILL -1 2>/dev/null
status() { printf '\036isol8:%s:%s\n' "$nonce" "$1" >&2; }
vars=("PATH=$program_path")
for ((i = 0; i < envcount; i++)); do
  LC_ALL=C IFS= read -r -d '' kv || { status "setup:the environment could not be read"; exit 125; }
  vars+=("$kv")
done
if [ "$tarsize" -gt 0 ]; then
  head -c "$tarsize" | tar -x -p -f - -C /sandbox || { status "setup:files could not be unpacked"; exit 125; }
fi
case $mode in
  read) LC_ALL=C read -r -N "$codesize" code; printf '%s' "$code" >"/sandbox/$name" ;;
  head) head -c "$codesize" >"/sandbox/$name" ;;
  empty) : >"/sandbox/$name" ;;
esac || { status "setup:the code could not be written to /sandbox"; exit 125; }
cd -- "$1" 2>/dev/null || { mkdir -p -- "$1" && cd -- "$1"; } ||
  { status "setup:working directory $1 is not usable"; exit 125; }
(sleep "$2"; kill -KILL -1) >/dev/null 2>&1 </dev/null &
watchdog=$!
disown  # its death at the end is no news for stderr
shift 2
oom_kills() {
  oom=0
  for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
    if [ -r "$f" ]; then
      while read -r key value; do [ "$key" = oom_kill ] && oom=$value; done <"$f"
      break
    fi
  done
}
oom_kills; before=$oom
status start
exec 3>&2 2>/dev/null  # bash's own "Killed" job report must not reach the program's stderr
env -- "${vars[@]}" "$@" 2>&3 3>&-
rc=$?
if [ "$reap" = 0 ]; then kill -KILL "$watchdog"; else kill -KILL -1; fi
exec 2>&3 3>&-
oom_kills
status "exit:$rc:$((oom - before))"
exit "$rc"
"""
# code up to this size, without NUL bytes, is read by the shell builtin: no extra process
INLINE_CODE_MAX = 4096
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}")
TRAILER_MARK = b"\x1eisol8:"
STATUS_MAX = 4096


def new_nonce() -> str:
    return os.urandom(16).hex()


def sandbox_bytes(size: int) -> int:
    """What a file of `size` bytes takes of a tmpfs: whole pages."""
    return -(-size // 4096) * 4096


def walk_directory(root: Path) -> Iterator[tuple[Path, str]]:
    """(path, name inside /sandbox) of root's contents, each folder before what it holds; SKIPPED_DIRS left out.

    Only regular files, folders and symlinks travel: a socket, fifo or device is refused (a fifo
    would block the reader, and none of them can be copied)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in [*dirs, *sorted(files)]:
            path = Path(folder, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                kind = "socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode) else "device"
                raise UsageError(f"--files: {path} is a {kind}: only files, folders and symlinks can be copied")
            yield path, path.relative_to(root).as_posix()


def add_directory(tar: Any, root: Path) -> int:
    """Add root's contents (not root itself), keeping folders, modes, symlinks and hard links.

    Returns the bytes the files take in /sandbox."""
    used = 0
    for path, arcname in walk_directory(root):
        info = tar.gettarinfo(str(path), arcname)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isreg():
            used += sandbox_bytes(info.size)
            with open(path, "rb") as f:
                tar.addfile(info, f)
        else:  # a folder, a symlink, or a hard link to a file added before (tar links it again)
            tar.addfile(info)
    return used


def build_tar(files_dir: Path | None, code_name: str, code: bytes, code_mode: int = 0o644) -> tuple[bytes, int]:
    """The payload tar (the --files folder first, then the code file, which wins a name clash) and
    the bytes its files take in /sandbox."""
    import tarfile  # not needed on the plain-code path

    buf = io.BytesIO()
    used = sandbox_bytes(len(code))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if files_dir is not None:
            used += add_directory(tar, files_dir)
        info = tarfile.TarInfo(code_name)
        info.size = len(code)
        info.mode = stat.S_IMODE(code_mode)
        tar.addfile(info, io.BytesIO(code))
    return buf.getvalue(), used


def safe_code_name(name: str, extension: str) -> str:
    """The code file's name in /sandbox: the user's basename when it is plain, else main<ext>."""
    return name if _SAFE_NAME.fullmatch(name) else "main" + extension


@dataclass(frozen=True)
class Payload:
    """The --files folder as a tar (with the code inside), or the bare code when there is no folder."""

    tar: bytes
    code: bytes
    code_name: str
    sandbox_bytes: int  # what the files take in /sandbox once unpacked

    def header(self, nonce: str, env_count: int, reap: bool = True) -> bytes:
        if self.tar:
            mode = "tar"  # the code file is inside the tar
        elif not self.code:
            mode = "empty"
        elif len(self.code) <= INLINE_CODE_MAX and b"\0" not in self.code:
            mode = "read"
        else:
            mode = "head"
        fields = (nonce, len(self.tar), len(self.code), mode, self.code_name, env_count, int(reap))
        return " ".join(map(str, fields)).encode() + b"\n"


def make_payload(files_dir: Path | None, code_name: str, code: bytes) -> Payload:
    if files_dir is None:
        return Payload(b"", code, code_name, sandbox_bytes(len(code)))
    tar, used = build_tar(files_dir, code_name, code)
    return Payload(tar, b"", code_name, used)


def env_block(env: Mapping[str, str]) -> bytes:
    """The program's environment as the wrapper reads it: NAME=VALUE entries, each ended by NUL."""
    return b"".join(f"{name}={value}".encode() + b"\0" for name, value in env.items())


def stdin_stream(
    nonce: str, payload: Payload, env: Mapping[str, str], user_stdin: Iterable[bytes], *, reap: bool = True
) -> Iterator[bytes]:
    yield payload.header(nonce, len(env), reap) + env_block(env)
    for part in (payload.tar, payload.code):
        if part:
            yield part
    yield from user_stdin


@dataclass
class Trailer:
    kind: str  # "exit" or "setup"
    exit_code: int = 0
    oom_kills: int = 0
    message: str = ""


class TrailerFilter:
    """Removes the wrapper's status lines (marked with the run's nonce) from stderr and parses them.

    The program can learn the nonce (it may read the wrapper's memory), so only what it cannot
    forge counts: the first start line (the program starts after it), setup lines before that,
    exit lines after it; a marked line is at most STATUS_MAX bytes, longer ones pass as output.
    """

    def __init__(self, nonce: str) -> None:
        self.mark = TRAILER_MARK + nonce.encode() + b":"
        self.pending = b""
        self.trailer: Trailer | None = None
        self.started_at: float | None = None

    def feed(self, data: bytes) -> bytes:
        buf = self.pending + data
        self.pending = b""
        out: list[bytes] = []
        while True:
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
            code, _, oom = rest.partition(":")
            try:
                self.trailer = Trailer("exit", int(code), int(oom or 0))
            except ValueError:
                self.trailer = None
        elif kind == "setup" and self.started_at is None:
            self.trailer = Trailer("setup", message=rest)


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
