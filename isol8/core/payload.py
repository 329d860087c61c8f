"""What goes into the container: the wrapper script, and the payload on its stdin (environment, files, code)."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence

from isol8.errors import UsageError
from isol8.records import NamedTuple  # records as named tuples: dataclasses would cost every run ~15 ms

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv"})

# The container's entrypoint (bash -c WRAPPER isol8 WORKDIR BACKSTOP CMD...). From stdin it reads
# one header line "<nonce> <tar bytes> <code bytes> <tar|empty|read|head> <code name> <env count>
# <reap>", then the program's environment as NUL-terminated NAME=VALUE entries, then the tar (the
# --files folder, unpacked into /sandbox), then the code file (small code with the `read`
# builtin, larger code with GNU head -c, which never reads past its count); the rest of stdin is
# the program's. The user's environment never reaches this shell: it gets only the image's, runs
# its own tools from the system folders (never /sandbox), and exports the user's variables in the
# subshell that execs the program alone (never as a command's words, which the host's ps shows).
# It writes "<RS>isol8:<nonce>:start" to stderr just before CMD starts and
# "<RS>isol8:<nonce>:exit:<code>:<oom kills>:<cpu µs>:<peak memory>:<peak pids>" when it ends (the
# cgroup's figures, empty where the kernel keeps none). The program shares this shell's uid
# and can read or write its memory, so nothing it could forge decides anything: isol8 takes only
# the first start line (the program does not exist before it), setup lines only before it, and
# an exit line only when it agrees with the exit status the engine reports. With reap 1 (reap 0:
# a session that keeps background processes), `kill -KILL -1` before and after the program ends
# the sandbox user's other processes, PID 1 spared; in a session what holds is the root sweep
# that follows every execution (the backend's sweep), since the program can disturb this
# shell. The watchdog's `kill -KILL -1` after BACKSTOP seconds is the last of isol8's backstops,
# after the watcher outside the sandbox (isol8/backends/reaper.py) and, on podman, the engine's
# own --timeout.
# The wrapper's reading of the cgroup's figures (a constant of its own: scripts/bench times it).
USAGE_FUNCTION = r"""
usage() {  # the container's CPU time (µs), peak memory and peak pids; empty where the kernel has none
  cpu='' mem='' pids=''
  if [ -r /sys/fs/cgroup/cpu.stat ]; then
    while read -r key value; do [ "$key" = usage_usec ] && cpu=$value; done </sys/fs/cgroup/cpu.stat
    read -r mem 2>/dev/null </sys/fs/cgroup/memory.peak
    read -r pids 2>/dev/null </sys/fs/cgroup/pids.peak
  else
    read -r cpu 2>/dev/null </sys/fs/cgroup/cpuacct/cpuacct.usage && cpu=$((cpu / 1000))
    read -r mem 2>/dev/null </sys/fs/cgroup/memory/memory.max_usage_in_bytes
  fi
}
"""
# Bash's names that the wrapper cannot export: its read-only variables, its call-stack and
# PIPESTATUS arrays, and `_` (set to each command's path). They alone reach the program as words
# of env's command line (which the host's ps shows): request.check refuses them as secrets.
SHELL_FIXED = (
    *("BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID"),  # read-only (`readonly -p`)
    *("BASH_ARGC", "BASH_ARGV", "BASH_LINENO", "BASH_SOURCE", "PIPESTATUS", "_"),
)
WRAPPER = (
    r"""
IFS=' ' read -r nonce tarsize codesize mode name envcount reap outcount outmax || exit 125
program_path=$PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "$reap" = 0 ] || kill -KILL -1 2>/dev/null
status() { printf '\036isol8:%s:%s\n' "$nonce" "$1" >&2; }
vars=("PATH=$program_path") fixed=()
for ((i = 0; i < envcount; i++)); do
  LC_ALL=C IFS= read -r -d '' kv || { status "setup:the environment could not be read"; exit 125; }
  case ${kv%%=*} in
    """
    + " | ".join(SHELL_FIXED)
    + r""") fixed+=("$kv") ;;  # bash's own
    *) vars+=("$kv") ;;
  esac
done
outs=()
for ((i = 0; i < ${outcount:-0}; i++)); do
  LC_ALL=C IFS= read -r -d '' pattern || { status "setup:the output paths could not be read"; exit 125; }
  outs+=("$pattern")
done
if [ "$tarsize" -gt 0 ]; then
  head -c "$tarsize" | tar -x -p -i -f - -C /sandbox || { status "setup:files could not be unpacked"; exit 125; }
fi
case $mode in
  read) LC_ALL=C read -r -N "$codesize" code; printf '%s' "$code" >"/sandbox/$name" ;;
  head) head -c "$codesize" >"/sandbox/$name" ;;
  empty) : >"/sandbox/$name" ;;
esac || { status "setup:the code could not be written to /sandbox"; exit 125; }
cd -- "$1" 2>/dev/null || { mkdir -p -- "$1" && cd -- "$1"; } ||
  { status "setup:working directory $1 is not usable"; exit 125; }
# the watchdog: one subshell that waits on a pipe from this shell (bash's own timer, no sleep
# to fork and exec): "done" ends it quietly (an execution whose processes stay); the backstop's
# time, or the pipe's end without it (this shell gone), ends every process of the sandbox user
exec 4> >(exec >/dev/null 2>&1; IFS= read -r -t "$2" word; [ "$word" = done ] || kill -KILL -1)
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
"""
    + USAGE_FUNCTION
    + r"""oom_kills; before=$oom
usage; cpu_before=$cpu
status start
exec 3>&2 2>/dev/null  # bash's own "Killed" job report must not reach the program's stderr
launch() {  # NAME=VALUE... -- COMMAND...: exported by this shell, never words of a command line
  while [ "$1" != -- ]; do unset -v "${1%%=*}"; export -- "$1"; shift; done
  shift
  exec -- "$@" 2>&3 3>&- 4>&-
}
run=()  # bash's own names can only reach the program through env's command line
[ "${#fixed[@]}" -eq 0 ] || run=("$(type -P env)" -- "${fixed[@]}")
(launch "${vars[@]}" -- "${run[@]}" "$@")
rc=$?
if [ "$reap" = 0 ]; then  # the watchdog may be gone (the program can kill it): no SIGPIPE for this shell
  trap '' PIPE; echo done >&4; exec 4>&-; trap - PIPE
else
  kill -KILL -1
fi
exec 2>&3 3>&-
if [ "${#outs[@]}" -gt 0 ]; then  # the output files, as data: find's patterns, never this shell's
  status files
  for pattern in "${outs[@]}"; do find /sandbox -path "$pattern" -type f -printf '%P\0' 2>/dev/null; done |
    LC_ALL=C sort -zu | tar -c -f - -C /sandbox --null --no-recursion -T - 2>/dev/null | head -c "$outmax" |
    base64 -w 0 >&2
  printf '\n' >&2
  status files-end
fi
oom_kills
usage
[ -n "$cpu" ] && [ -n "$cpu_before" ] && cpu=$((cpu - cpu_before))
status "exit:$rc:$((oom - before)):$cpu:$mem:$pids"
exit "$rc"
"""
)
# A request's setup script: a file in /sandbox, run by its own bash before the program (never
# parsed by the wrapper), with no stdin (the program's is not its to read).
SETUP_NAME = ".isol8-setup.sh"
_SETUP_FIRST = (
    'bash -- "$1" </dev/null || { s=$?; echo "Setup script failed (exit code $s)" >&2; exit "$s"; }; shift; exec "$@"'
)


def setup_first(script: str) -> list[str]:
    """The command prefix that runs the setup script at path `script`, then the program (its arguments)."""
    return ["bash", "-c", _SETUP_FIRST, "isol8-setup", script]


# code up to this size, without NUL bytes, is read by the shell builtin: no extra process
INLINE_CODE_MAX = 4096
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-")


def new_nonce() -> str:
    return os.urandom(16).hex()


def sandbox_bytes(size: int) -> int:
    """What a file of `size` bytes takes of a tmpfs: whole pages."""
    return -(-size // 4096) * 4096


def walk_directory(root: str | os.PathLike[str]) -> Iterator[tuple[Path, str]]:
    """(path, name inside /sandbox) of root's contents, each folder before what it holds; SKIPPED_DIRS left out.

    Only regular files, folders and symlinks travel: a socket, fifo or device is refused (a fifo
    would block the reader, and none of them can be copied)."""
    from pathlib import Path  # only with --files: plain code never needs pathlib

    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in [*dirs, *sorted(files)]:
            path = Path(folder, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                kind = "socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode) else "device"
                raise UsageError(f"--files: {path} is a {kind}: only files, folders and symlinks can be copied")
            yield path, path.relative_to(root).as_posix()


def add_directory(tar: Any, root: str | os.PathLike[str]) -> int:
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


def build_tar(
    files_dir: str | os.PathLike[str] | None,
    code_name: str,
    code: bytes,
    code_mode: int = 0o644,
    extra: Mapping[str, bytes] | None = None,
) -> tuple[bytes, int]:
    """The payload tar (the --files folder first, then the extra files and the code file, which win
    a name clash) and the bytes its files take in /sandbox."""
    import tarfile  # not needed on the plain-code path

    buf = io.BytesIO()
    used = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if files_dir is not None:
            used += add_directory(tar, files_dir)
        for name, data, mode in [*((n, d, 0o644) for n, d in (extra or {}).items()), (code_name, code, code_mode)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = stat.S_IMODE(mode)
            tar.addfile(info, io.BytesIO(data))
            used += sandbox_bytes(len(data))
    return buf.getvalue(), used


def safe_code_name(name: str, extension: str) -> str:
    """The code file's name in /sandbox: the user's basename when it is plain, else main<ext>.
    Plain is [A-Za-z0-9][A-Za-z0-9._+-]{0,200}, checked without a regular expression's compile."""
    plain = 0 < len(name) <= 201 and name[0] not in "._+-" and _NAME_CHARS.issuperset(name)
    return name if plain else "main" + extension


class Payload(NamedTuple):
    """The --files folder as a tar (with the code inside), or the bare code when there is no folder."""

    tar: bytes
    code: bytes
    code_name: str
    sandbox_bytes: int  # what the files take in /sandbox once unpacked
    packages: bytes = b""  # run-time installed packages: a tar sent before `tar` (one archive after another)

    def header(self, nonce: str, env_count: int, reap: bool = True, outputs: int = 0, out_max: int = 0) -> bytes:
        if self.tar:
            mode = "tar"  # the code file is inside the tar
        elif not self.code:
            mode = "empty"
        elif len(self.code) <= INLINE_CODE_MAX and b"\0" not in self.code:
            mode = "read"
        else:
            mode = "head"
        tar_size = len(self.packages) + len(self.tar)
        fields = (nonce, tar_size, len(self.code), mode, self.code_name, env_count, int(reap), outputs, out_max)
        return " ".join(map(str, fields)).encode() + b"\n"


def make_payload(
    files_dir: str | os.PathLike[str] | None,
    code_name: str,
    code: bytes,
    extra: Mapping[str, bytes] | None = None,
    packages: bytes = b"",
) -> Payload:
    """extra: more files for /sandbox (name -> content), such as a setup script; packages: a tar of
    run-time installed packages (isol8.core.installs), unpacked first (the wrapper's tar reads
    one archive after another)."""
    if files_dir is None and not extra and not packages:
        return Payload(b"", code, code_name, sandbox_bytes(len(code)))
    tar, used = build_tar(files_dir, code_name, code, extra=extra)
    return Payload(tar, b"", code_name, used + len(packages), packages)


def env_block(env: Mapping[str, str]) -> bytes:
    """The program's environment as the wrapper reads it: NAME=VALUE entries, each ended by NUL."""
    return b"".join(f"{name}={value}".encode() + b"\0" for name, value in env.items())


def stdin_stream(
    nonce: str,
    payload: Payload,
    env: Mapping[str, str],
    user_stdin: Iterable[bytes],
    *,
    reap: bool = True,
    outputs: Sequence[str] = (),
    out_max: int = 0,
) -> Iterator[bytes]:
    """outputs: the output-file patterns (isol8.core.outputs), sent after the environment, and
    out_max the most tar bytes to send back."""
    head = payload.header(nonce, len(env), reap, len(outputs), out_max) + env_block(env)
    yield head + b"".join(p.encode() + b"\0" for p in outputs)
    for part in (payload.packages, payload.tar, payload.code):
        if part:
            yield part
    yield from user_stdin
