"""isol8.core.payload: output filters (Masker, Limiter, TrailerFilter), the tar payload and the stdin stream."""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from isol8.core.payload import (
    INLINE_CODE_MAX,
    SETUP_NAME,
    SHELL_FIXED,
    WRAPPER,
    build_tar,
    env_block,
    make_payload,
    safe_code_name,
    setup_first,
    stdin_stream,
)
from isol8.core.streams import STATUS_MAX, Limiter, Masker, Trailer, TrailerFilter, Usage
from isol8.errors import UsageError

# ---- helpers ------------------------------------------------------------------------------------


def splits(data: bytes, parts: int) -> Iterator[list[bytes]]:
    """Every way to cut data into `parts` consecutive (possibly empty) chunks."""
    for cuts in itertools.combinations_with_replacement(range(len(data) + 1), parts - 1):
        bounds = (0, *cuts, len(data))
        yield [data[a:b] for a, b in itertools.pairwise(bounds)]


def mask_chunks(secrets: Sequence[str], chunks: Sequence[bytes]) -> bytes:
    masker = Masker(secrets)
    return b"".join(masker.feed(c) for c in chunks) + masker.flush()


def limit_chunks(limit: int, chunks: Sequence[bytes]) -> tuple[bytes, bool]:
    limiter = Limiter(limit)
    out = b"".join(limiter.feed(c) for c in chunks) + limiter.flush()
    return out, limiter.truncated


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ---- Masker -------------------------------------------------------------------------------------


def test_masker_masks_a_secret_in_one_chunk() -> None:
    assert mask_chunks(["s3cr3t"], [b"token=s3cr3t!\n"]) == b"token=***!\n"


@pytest.mark.parametrize("parts", [2, 3])
def test_masker_masks_a_secret_split_across_chunks(parts: int) -> None:
    data = b"before s3cr3t after"
    for chunks in splits(data, parts):
        assert mask_chunks(["s3cr3t"], chunks) == b"before *** after", chunks


def test_masker_masks_a_secret_fed_one_byte_at_a_time() -> None:
    assert mask_chunks(["s3cr3t"], bytewise(b"a s3cr3t b s3cr3t")) == b"a *** b ***"


def test_masker_masks_several_secrets_and_every_occurrence() -> None:
    data = b"alpha|bravo-charlie|alpha|x"
    expected = b"***|***|***|x"
    assert mask_chunks(["alpha", "bravo-charlie"], [data]) == expected
    assert mask_chunks(["alpha", "bravo-charlie"], bytewise(data)) == expected
    for chunks in splits(data, 2):
        assert mask_chunks(["bravo-charlie", "alpha"], chunks) == expected, chunks


def test_masker_masks_multibyte_secrets() -> None:
    data = "clé: pâté-€".encode()
    assert mask_chunks(["pâté-€"], bytewise(data)) == "clé: ***".encode()


def test_masker_prefers_the_longest_secret_in_one_chunk() -> None:
    assert mask_chunks(["abc", "abcdef"], [b"x abcdef y"]) == b"x *** y"


@pytest.mark.parametrize(
    ("secrets", "data"),
    [
        (["s3cr3t"], b"[s3cr3t] and [s3cr3t]"),
        (["alpha", "bravo"], b"alphabravo alpha bravo"),
        (["abc", "xyz1"], b"abc xyz1 abcxyz1"),
        (["abcdef", "cd"], b"xx abcdef yy"),
        (["abcdef", "abc"], b"xx abcdef yy"),
    ],
)
def test_masker_output_does_not_depend_on_chunk_boundaries(secrets: list[str], data: bytes) -> None:
    whole = mask_chunks(secrets, [data])
    for chunks in splits(data, 2):
        assert mask_chunks(secrets, chunks) == whole, chunks
    assert mask_chunks(secrets, bytewise(data)) == whole


def test_masker_ignores_empty_secrets() -> None:
    # replacing b"" would put *** between every byte
    assert mask_chunks(["", "tok"], [b"a tok b"]) == b"a *** b"
    masker = Masker(["", ""])
    assert masker.feed(b"plain output") == b"plain output"  # nothing to mask: nothing held back
    assert masker.flush() == b""


def test_masker_without_secrets_passes_chunks_through_immediately() -> None:
    masker = Masker([])
    assert masker.feed(b"abc") == b"abc"
    assert masker.feed(b"") == b""
    assert masker.flush() == b""


def test_masker_flush_returns_what_was_held_back_once() -> None:
    masker = Masker(["s3cr3t"])
    out = masker.feed(b"hello s3c")
    assert len(out) < len(b"hello s3c")  # a possible start of the secret is held back
    assert out + masker.flush() == b"hello s3c"
    assert masker.flush() == b""


def test_masker_flush_masks_a_secret_at_the_very_end() -> None:
    masker = Masker(["s3cr3t"])
    assert masker.feed(b"x s3cr3t") + masker.flush() == b"x ***"


def test_masker_holds_back_less_than_the_longest_secret() -> None:
    masker = Masker(["abcdef", "xy"])
    out = masker.feed(b"0123456789")
    assert b"0123456789".startswith(out)
    assert len(out) >= 10 - (len("abcdef") - 1)  # output is not delayed more than a secret's length
    assert out + masker.flush() == b"0123456789"


# ---- Limiter ------------------------------------------------------------------------------------


def test_limiter_under_the_limit_passes_everything() -> None:
    assert limit_chunks(10, [b"abc", b"def"]) == (b"abcdef", False)


def test_limiter_exactly_at_the_limit_is_not_truncated() -> None:
    assert limit_chunks(6, [b"abc", b"def"]) == (b"abcdef", False)
    assert limit_chunks(6, [b"abcdef", b""]) == (b"abcdef", False)


def test_limiter_one_byte_over_the_limit_is_truncated() -> None:
    assert limit_chunks(6, [b"abc", b"def", b"g"]) == (b"abcdef", True)


def test_limiter_cuts_inside_a_chunk_and_drops_everything_after() -> None:
    limiter = Limiter(4)
    assert limiter.feed(b"abc") == b"abc"
    assert limiter.feed(b"defgh") == b"d"
    assert limiter.truncated
    assert limiter.feed(b"i") == b""
    assert limiter.feed(b"") == b""
    assert limiter.truncated


def test_limiter_zero_limit_keeps_nothing() -> None:
    assert limit_chunks(0, [b"x"]) == (b"", True)
    assert limit_chunks(0, [b""]) == (b"", False)


TEXT = "aé€😀z"  # 1, 2, 3, 4 and 1 bytes in UTF-8


def longest_prefix_within(text: str, limit: int) -> bytes:
    best = b""
    for end in range(len(text) + 1):
        encoded = text[:end].encode()
        if len(encoded) <= limit:
            best = encoded
    return best


@pytest.mark.parametrize("limit", range(len(TEXT.encode()) + 1))
def test_limiter_cuts_on_a_utf8_boundary(limit: int) -> None:
    data = TEXT.encode()
    out, truncated = limit_chunks(limit, [data])
    assert out == longest_prefix_within(TEXT, limit)
    out.decode("utf-8")  # strict: no half character at the end
    assert truncated is (limit < len(data))


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (1, b"a"),
        (2, b"a"),  # the 2-byte \u00e9 does not fit
        (3, "aé".encode()),
        (5, "aé".encode()),
        (6, "aé€".encode()),
        (9, "aé€".encode()),
        (10, "aé€😀".encode()),
    ],
)
def test_limiter_cut_table(limit: int, expected: bytes) -> None:
    assert limit_chunks(limit, [TEXT.encode()]) == (expected, True)


def test_limiter_cuts_on_a_utf8_boundary_when_the_limit_falls_in_a_later_chunk() -> None:
    out, truncated = limit_chunks(4, [b"ab", "€cd".encode()])
    assert (out, truncated) == (b"ab", True)


def test_limiter_output_is_valid_utf8_when_a_chunk_boundary_splits_a_character_at_the_limit() -> None:
    data = "aé".encode()  # b"a\xc3\xa9"
    out, truncated = limit_chunks(2, [data[:2], data[2:]])
    assert truncated
    assert out == b"a"


# ---- TrailerFilter ------------------------------------------------------------------------------

NONCE = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def status_line(kind_and_rest: str, nonce: str = NONCE) -> bytes:
    return b"\x1eisol8:" + nonce.encode() + b":" + kind_and_rest.encode() + b"\n"


START = status_line("start")


def filter_chunks(chunks: Sequence[bytes], nonce: str = NONCE) -> tuple[bytes, Trailer | None]:
    trailer = TrailerFilter(nonce)
    out = b"".join(trailer.feed(c) for c in chunks) + trailer.flush()
    return out, trailer.trailer


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("exit:0:0", Trailer("exit", 0, 0)),
        ("exit:3:0", Trailer("exit", 3, 0)),
        ("exit:137:2", Trailer("exit", 137, 2)),
        ("exit:1:", Trailer("exit", 1, 0)),
        ("exit:0:0:1234567:52428800:7", Trailer("exit", 0, 0, usage=Usage(1234, 52428800, 7))),
        ("exit:0:0:999:4096:", Trailer("exit", 0, 0, usage=Usage(0, 4096, None))),  # cgroup v1: no pids peak
        ("exit:0:0:::", Trailer("exit", 0, 0, usage=Usage())),
        ("exit:0:0:-5:1e9:x", Trailer("exit", 0, 0, usage=Usage())),  # never a figure the kernel gives
        ("exit:0:0:\u00b2:\u0663:", Trailer("exit", 0, 0, usage=Usage())),  # digits, but not ASCII ones
        ("setup:files could not be unpacked", Trailer("setup", message="files could not be unpacked")),
        (
            "setup:working directory /sandbox/a:b is not usable",
            Trailer("setup", message="working directory /sandbox/a:b is not usable"),
        ),
    ],
)
def test_trailer_is_removed_from_stderr_and_parsed(line: str, expected: Trailer) -> None:
    before = [] if expected.kind == "setup" else [START]  # setup lines come before the start, exit lines after
    out, trailer = filter_chunks([*before, b"warning: x\n", status_line(line)])
    assert out == b"warning: x\n"
    assert trailer == expected


def test_trailer_marker_split_at_every_position() -> None:
    data = START + b"err line\n" + status_line("exit:42:1")
    for chunks in splits(data, 2):
        assert filter_chunks(chunks) == (b"err line\n", Trailer("exit", 42, 1)), chunks
    assert filter_chunks(bytewise(data)) == (b"err line\n", Trailer("exit", 42, 1))


def test_trailer_marker_split_across_three_chunks() -> None:
    data = START + b"e\n" + status_line("exit:7:0")
    for chunks in splits(data, 3):
        assert filter_chunks(chunks) == (b"e\n", Trailer("exit", 7, 0)), chunks


@pytest.mark.parametrize(
    "data",
    [
        status_line("exit:0:0", nonce=OTHER),
        b"oops " + status_line("exit:0:0", nonce=NONCE[:-1] + "0"),
        b"\x1eisol8:" + NONCE.encode() + b"exit:0:0\n",  # no ':' after the nonce
        b"\x1eisol8:" + NONCE[:8].encode() + b":exit:0:0\n",
    ],
)
def test_forged_marker_with_another_nonce_is_left_alone(data: bytes) -> None:
    assert filter_chunks([data]) == (data, None)
    assert filter_chunks(bytewise(data)) == (data, None)


def test_forged_marker_is_kept_and_the_real_one_still_parsed() -> None:
    forged = status_line("exit:0:0", nonce=OTHER)
    out, trailer = filter_chunks([START + b"x" + forged, b"y\n" + status_line("exit:9:0")])
    assert out == b"x" + forged + b"y\n"
    assert trailer == Trailer("exit", 9, 0)


def test_trailer_filter_holds_back_a_possible_marker_start_until_flush() -> None:
    trailer = TrailerFilter(NONCE)
    assert trailer.feed(b"abc\x1eiso") == b"abc"
    assert trailer.flush() == b"\x1eiso"
    assert trailer.trailer is None


def test_output_without_a_trailer_passes_unchanged() -> None:
    data = b"Traceback (most recent call last):\n  ...\nValueError: x\n"
    assert filter_chunks([data]) == (data, None)


def test_start_line_is_removed_and_is_not_the_trailer() -> None:
    trailer = TrailerFilter(NONCE)
    assert trailer.feed(status_line("start") + b"program stderr\n") == b"program stderr\n"
    assert trailer.trailer is None
    assert trailer.started_at is not None
    assert trailer.feed(status_line("exit:0:0")) + trailer.flush() == b""
    assert trailer.trailer == Trailer("exit", 0, 0)


def test_unknown_trailer_kind_is_removed_but_not_parsed() -> None:
    assert filter_chunks([b"a\n", status_line("bogus:1")]) == (b"a\n", None)


def test_only_the_first_start_line_counts() -> None:
    """A program that learnt the nonce cannot move the deadline by writing start lines."""
    trailer = TrailerFilter(NONCE)
    trailer.feed(START)
    first = trailer.started_at
    assert first is not None
    time.sleep(0.01)
    assert trailer.feed(START + START + b"x") == b"x"
    assert trailer.started_at == first


def test_setup_lines_after_the_start_and_exit_lines_before_it_are_ignored() -> None:
    """Before the start line only the wrapper runs; after it, a setup line can only be the program's."""
    assert filter_chunks([status_line("exit:0:0")]) == (b"", None)
    assert filter_chunks([START, status_line("setup:fake engine failure")]) == (b"", None)
    assert filter_chunks([START, status_line("exit:3:0"), status_line("setup:x")]) == (b"", Trailer("exit", 3, 0))


def test_a_marked_line_without_an_end_is_output_and_never_buffered_without_bound() -> None:
    trailer = TrailerFilter(NONCE)
    trailer.feed(START)
    flood = b"\x1eisol8:" + NONCE.encode() + b":" + b"A" * (5 * STATUS_MAX)
    out = trailer.feed(flood)
    assert len(trailer.pending) < STATUS_MAX
    assert out + trailer.flush() == flood
    assert trailer.trailer is None


# ---- build_tar ----------------------------------------------------------------------------------


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    """Name -> the last member of that name (the one extraction leaves behind)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "README.md", b"# hi\n")
    write(root / "bin" / "run.sh", b"#!/bin/sh\necho run\n", 0o755)
    write(root / "pkg" / "__init__.py", b"")
    write(root / "pkg" / "sub" / "deep.py", b"VALUE = 42\n", 0o600)
    (root / "pkg" / "sub").chmod(0o750)
    (root / "empty").mkdir()
    for skipped in (".git", "node_modules", "__pycache__", ".venv"):
        write(root / skipped / "inside.txt", b"skip me")
    write(root / "pkg" / "node_modules" / "dep" / "index.js", b"skip me too")
    write(root / "pkg" / "__pycache__" / "x.cpython-311.pyc", b"\0")
    write(root / "web" / ".git" / "HEAD", b"ref: refs/heads/main\n")
    write(root / ".env.example", b"A=1\n")  # a dotfile that is not a skipped folder
    return root


def test_build_tar_keeps_nested_folders_and_skips_tool_folders(project: Path) -> None:
    data = build_tar(project, "main.py", b"print(1)\n")[0]
    assert set(members(data)) == {
        ".env.example",
        "README.md",
        "bin",
        "bin/run.sh",
        "empty",
        "pkg",
        "pkg/__init__.py",
        "pkg/sub",
        "pkg/sub/deep.py",
        "web",
        "main.py",
    }


def test_build_tar_keeps_file_and_folder_modes(project: Path) -> None:
    got = members(build_tar(project, "main.py", b"")[0])
    assert stat.S_IMODE(got["bin/run.sh"].mode) == 0o755
    assert stat.S_IMODE(got["README.md"].mode) == 0o644
    assert stat.S_IMODE(got["pkg/sub/deep.py"].mode) == 0o600
    assert stat.S_IMODE(got["pkg/sub"].mode) == 0o750
    assert got["pkg/sub"].isdir() and got["empty"].isdir()
    assert got["bin/run.sh"].isreg()


def test_build_tar_keeps_contents(project: Path) -> None:
    data = build_tar(project, "main.py", b"print(1)\n")[0]
    assert read_member(data, "pkg/sub/deep.py") == b"VALUE = 42\n"
    assert read_member(data, "bin/run.sh") == b"#!/bin/sh\necho run\n"
    assert read_member(data, "main.py") == b"print(1)\n"


def test_build_tar_does_not_leak_local_owners(project: Path) -> None:
    for info in members(build_tar(project, "main.py", b"")[0]).values():
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", ""), info.name


def test_build_tar_code_file_wins_a_name_clash(project: Path, tmp_path: Path) -> None:
    write(project / "main.py", b"print('from --files')\n", 0o755)
    data = build_tar(project, "main.py", b"print('the code')\n")[0]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = [m.name for m in tar.getmembers()]
        assert names[-1] == "main.py"  # added last, so extraction overwrites the --files copy
        dest = tmp_path / "out"
        tar.extractall(dest)  # noqa: S202 - our own tar; no filter= on Python < 3.11.4
    assert (dest / "main.py").read_bytes() == b"print('the code')\n"
    assert stat.S_IMODE((dest / "main.py").stat().st_mode) == 0o644
    assert (dest / "pkg" / "sub" / "deep.py").read_bytes() == b"VALUE = 42\n"


@pytest.mark.parametrize(("mode", "expected"), [(0o644, 0o644), (0o755, 0o755), (stat.S_IFREG | 0o700, 0o700)])
def test_build_tar_code_file_mode(mode: int, expected: int) -> None:
    info = members(build_tar(None, "run.sh", b"echo\n", mode)[0])["run.sh"]
    assert info.isreg()
    assert stat.S_IMODE(info.mode) == expected
    assert info.size == 5


def test_build_tar_without_files_holds_only_the_code() -> None:
    data = build_tar(None, "main.ts", b"console.log(1)")[0]
    assert list(members(data)) == ["main.ts"]
    assert read_member(data, "main.ts") == b"console.log(1)"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_build_tar_keeps_symlinks_as_links_and_never_follows_them(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "host-secret.txt", b"do not copy")
    (project / "link-to-outside").symlink_to(outside)
    (project / "readme-link").symlink_to("README.md")
    got = members(build_tar(project, "main.py", b"")[0])
    assert got["link-to-outside"].issym() and got["link-to-outside"].linkname == str(outside)
    assert got["readme-link"].issym() and got["readme-link"].linkname == "README.md"
    assert not any(name.startswith("link-to-outside/") for name in got)


def test_build_tar_keeps_hard_links(project: Path, tmp_path: Path) -> None:
    os.link(project / "README.md", project / "pkg" / "README-again.md")
    data = build_tar(project, "main.py", b"")[0]
    link = members(data)["pkg/README-again.md"]
    assert link.islnk() and link.linkname == "README.md"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp_path / "out")  # noqa: S202 - our own tar; no filter= on Python < 3.11.4
    assert (tmp_path / "out" / "pkg" / "README-again.md").read_bytes() == b"# hi\n"


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_build_tar_refuses_what_cannot_be_copied(project: Path, kind: str) -> None:
    path = project / "pkg" / f"a-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    with pytest.raises(UsageError, match=f"a-{kind} is a {kind}"):
        build_tar(project, "main.py", b"")


def test_the_payload_knows_what_it_takes_in_the_sandbox(project: Path) -> None:
    assert make_payload(None, "main.py", b"x" * 5000).sandbox_bytes == 8192
    write(project / "big.bin", b"\0" * 10_000)
    used = make_payload(project, "main.py", b"print(1)").sandbox_bytes
    assert used >= 12288 + 4096 and used % 4096 == 0


def test_run_time_packages_travel_first_and_the_wrappers_tar_unpacks_both_archives(tmp_path: Path) -> None:
    """A packages tree (GNU tar's, as an installer writes it) and the files tar, one after the other:
    the wrapper's `tar -x -i` reads past the first archive's end into the second."""
    tree_src = tmp_path / "src"
    write(tree_src / ".local" / "lib" / "six.py", b"SIX = 6\n")
    tar_c = ["tar", "-c", "-f", "-", "-C", str(tree_src), ".local"]
    tree = subprocess.run(tar_c, capture_output=True, check=True).stdout
    payload = make_payload(None, "main.py", b"import six\n", packages=tree)
    assert (payload.packages, payload.code) == (tree, b"")
    assert payload.sandbox_bytes >= len(tree) + 4096
    header = payload.header("n", 0).split()
    assert (int(header[1]), header[3]) == (len(tree) + len(payload.tar), b"tar")  # the code is in the second one
    sent = b"".join(stdin_stream("n", payload, {}, []))
    assert sent == payload.header("n", 0) + tree + payload.tar
    out = tmp_path / "sandbox"
    out.mkdir()
    subprocess.run(["tar", "-x", "-p", "-i", "-f", "-", "-C", str(out)], input=tree + payload.tar, check=True)
    assert (out / ".local" / "lib" / "six.py").read_bytes() == b"SIX = 6\n"
    assert (out / "main.py").read_bytes() == b"import six\n"
    assert "tar -x -p -i -f - -C /sandbox" in WRAPPER


# ---- stdin_stream -------------------------------------------------------------------------------


def test_header_then_code_then_user_stdin() -> None:
    chunks = list(stdin_stream(NONCE, make_payload(None, "main.py", b"print(1)\n"), {}, [b"line 1\n", b"line 2\n"]))
    assert chunks == [f"{NONCE} 0 9 read main.py 0 1 0 0\n".encode(), b"print(1)\n", b"line 1\n", b"line 2\n"]


def test_the_header_says_whether_the_wrapper_ends_other_processes() -> None:
    payload = make_payload(None, "main.py", b"C")
    assert payload.header("n", 0).endswith(b" 0 1 0 0\n")
    assert payload.header("n", 0, reap=False).endswith(b" 0 0 0 0\n")
    assert next(stdin_stream("n", payload, {}, [], reap=False)).endswith(b" 0 0 0 0\n")


def test_the_environment_travels_after_the_header_as_nul_ended_entries() -> None:
    env = {"A": "1", "MULTI": "line 1\nline 2 --privileged", "EMPTY": "", "EQ": "a=b"}
    chunks = list(stdin_stream(NONCE, make_payload(None, "main.py", b"C"), env, []))
    assert chunks == [
        f"{NONCE} 0 1 read main.py 4 1 0 0\n".encode() + b"A=1\0MULTI=line 1\nline 2 --privileged\0EMPTY=\0EQ=a=b\0",
        b"C",
    ]
    assert env_block({}) == b""


def test_the_wrapper_knows_every_read_only_variable_of_bash() -> None:
    """Those it cannot export (with bash's arrays that test_supervision finds cannot be either):
    env's command line carries them to the program."""
    bash = shutil.which("bash")
    assert bash
    declared = subprocess.run([bash, "-c", "readonly -p"], env={}, capture_output=True, text=True, check=True).stdout
    assert list(SHELL_FIXED[:6]) == sorted(re.findall(r"^declare -\w+ (\w+)", declared, re.MULTILINE))
    assert "\n    " + " | ".join(SHELL_FIXED) + ') fixed+=("$kv") ;;' in WRAPPER


@pytest.mark.parametrize("name", SHELL_FIXED)
def test_a_name_bash_keeps_is_a_variable_but_never_a_secret(name: str) -> None:
    from isol8 import runtimes
    from isol8.core.runner import RunRequest

    RunRequest(runtime=runtimes.get("bash"), cmd="true", env={name: "1"}).check()
    with pytest.raises(
        UsageError, match=f"^{name} cannot be a secret: the sandbox's shell keeps that name for itself$"
    ):
        RunRequest(runtime=runtimes.get("bash"), cmd="true", secrets={name: "1"}).check()


@pytest.mark.parametrize(
    ("code", "mode"),
    [
        (b"", "empty"),
        (b"x" * INLINE_CODE_MAX, "read"),
        (b"x" * (INLINE_CODE_MAX + 1), "head"),
        (b"print('a\0b')", "head"),  # the shell builtin cannot hold NUL bytes
    ],
)
def test_code_transfer_mode(code: bytes, mode: str) -> None:
    header = make_payload(None, "main.py", code).header("n", 2)
    assert header == f"n 0 {len(code)} {mode} main.py 2 1 0 0\n".encode()


def test_with_files_the_code_travels_inside_the_tar(project: Path) -> None:
    payload = make_payload(project, "main.py", b"print(1)\n")
    assert payload.code == b""
    assert payload.header("n", 0) == f"n {len(payload.tar)} 0 tar main.py 0 1 0 0\n".encode()
    assert members(payload.tar)["main.py"].size == 9


def test_the_output_patterns_travel_after_the_environment_with_the_tar_allowance() -> None:
    chunks = list(
        stdin_stream(NONCE, make_payload(None, "main.py", b"C"), {"A": "1"}, [], outputs=["/sandbox/*.png"], out_max=99)
    )
    assert chunks == [f"{NONCE} 0 1 read main.py 1 1 1 99\n".encode() + b"A=1\0/sandbox/*.png\0", b"C"]


def test_stdin_stream_reads_user_stdin_lazily() -> None:
    started: list[bool] = []

    def user_stdin() -> Iterator[bytes]:
        started.append(True)
        yield b"late"

    stream = stdin_stream(NONCE, make_payload(None, "main.py", b"C"), {}, user_stdin())
    assert next(stream).startswith(NONCE.encode())
    assert next(stream) == b"C"
    assert started == []  # the container gets its code before isol8 waits on the user's stdin
    assert list(stream) == [b"late"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("script.py", "script.py"),
        ("my-tool_2.cjs", "my-tool_2.cjs"),
        ("bad name.py", "main.py"),
        ("x\ny.py", "main.py"),
        (".hidden.py", "main.py"),
        ("$(id).py", "main.py"),
    ],
)
def test_code_file_names_are_kept_only_when_plain(name: str, expected: str) -> None:
    assert safe_code_name(name, ".py") == expected


# ---- a request's setup script ---------------------------------------------------------------


def test_build_tar_adds_extra_files_before_the_code() -> None:
    data, used = build_tar(None, "main.py", b"print(1)", extra={SETUP_NAME: b"echo hi\n"})
    got = members(data)
    assert list(got) == [SETUP_NAME, "main.py"] and got[SETUP_NAME].mode == 0o644
    assert used == 2 * 4096
    assert make_payload(None, "main.py", b"1", {SETUP_NAME: b"x"}).tar  # a setup script makes it a tar


def _setup_then(tmp_path: Path, script: str, *program: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "setup.sh").write_text(script)
    argv = [*setup_first(str(tmp_path / "setup.sh")), *program]
    return subprocess.run(argv, input="the program's stdin\n", capture_output=True, text=True, cwd=tmp_path)


def test_the_setup_script_runs_first_without_the_programs_stdin(tmp_path: Path) -> None:
    done = _setup_then(
        tmp_path, "echo setup; cat; echo made > made.txt\n", "bash", "-c", 'cat made.txt; cat; echo "$0"', "a b"
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "setup\nmade\nthe program's stdin\na b\n", "")


def test_a_failing_setup_script_stops_the_run_with_its_status(tmp_path: Path) -> None:
    done = _setup_then(tmp_path, "echo no >&2; exit 7\n", "touch", "ran")
    assert (done.returncode, done.stderr) == (7, "no\nSetup script failed (exit code 7)\n")
    assert not (tmp_path / "ran").exists()


def test_the_setup_script_is_a_file_never_parsed_by_isol8s_shell(tmp_path: Path) -> None:
    """Its text is only ever bash's input from the file: quotes and $(...) in it are its own business."""
    done = _setup_then(tmp_path, "echo '$(touch pwned)' \"'\"\n", "true")
    assert (done.returncode, done.stdout) == (0, "$(touch pwned) '\n")
    assert not (tmp_path / "pwned").exists()


def test_the_in_container_watchdog_gets_the_runs_time_and_only_the_engines_backstop_the_unpacking() -> None:
    """The wrapper's watchdog starts once everything is unpacked; the engine's backstop (podman's
    --timeout) starts with the container, so it alone allows a second per 8 MiB of packages."""
    from isol8 import runtimes
    from isol8.core.runner import BACKSTOP_GRACE_S, Execution, RunRequest

    class NoEngine:
        def local_image(self, ref: str) -> str:
            return ref

    request = RunRequest(runtimes.get("python"), code=b"1", timeout_ms=2500, packages=b"\0" * (16 << 20))
    execution = Execution(NoEngine(), request)  # type: ignore[arg-type]
    assert execution.command[:5] == ["-c", WRAPPER, "isol8", "/sandbox", str(3 + BACKSTOP_GRACE_S)]
    assert execution.backstop_s == 3 + BACKSTOP_GRACE_S + 2
