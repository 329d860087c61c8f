"""Output files without an engine: patterns, the wrapper's block read back, the caps, the writing out."""

from __future__ import annotations

import io
import os
import tarfile
from base64 import b64encode
from pathlib import Path

import pytest

from isol8.core.outputs import OutputLimits, pattern, patterns, read_block, tar_max
from isol8.core.streams import TrailerFilter
from isol8.errors import OutputFilesError, UsageError
from isol8.frontends.cli.output import write_output_files

NONCE = "0123456789abcdef0123456789abcdef"
MARK = b"\x1eisol8:" + NONCE.encode() + b":"
SMALL = OutputLimits(max_file=100, max_total=150)


def tar_of(*entries: tuple[str, bytes | None], link: str | None = None) -> bytes:
    """A tar of (name, content) files, (name, None) folders, and a symlink `link` -> /etc/passwd."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("plot.png", "/sandbox/plot.png"), ("/sandbox/out/*.csv", "/sandbox/out/*.csv"), ("./a//b", "/sandbox/a/b")],
)
def test_a_pattern_is_made_absolute_under_the_sandbox(raw: str, expected: str) -> None:
    assert pattern(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "/etc/passwd", "../x", "/sandbox/../etc/x", "/sandbox", "a\0b", "a\nb", "/sandbox/a/../b"]
)
def test_a_pattern_outside_the_sandbox_or_unusable_is_refused(raw: str) -> None:
    with pytest.raises(UsageError):
        pattern(raw)


def test_patterns_are_deduplicated_and_bounded() -> None:
    assert patterns(["a", "/sandbox/a", "b"]) == ("/sandbox/a", "/sandbox/b")
    with pytest.raises(UsageError, match="at most 256"):
        patterns([f"f{i}" for i in range(257)])


def test_the_block_gives_regular_files_by_sandbox_path_and_lists_what_matched_none() -> None:
    block = tar_of(("out", None), ("out/a.csv", b"1,2\n"), ("plot.png", b"\x89PNG\0\xff"), link="secret")
    got = read_block(block, ["/sandbox/out/*.csv", "/sandbox/plot.png", "/sandbox/secret", "/sandbox/none"], SMALL)
    assert got.files == {"/sandbox/out/a.csv": b"1,2\n", "/sandbox/plot.png": b"\x89PNG\0\xff"}
    assert got.missing == ("/sandbox/secret", "/sandbox/none")  # a symlink is never followed


def test_a_file_over_the_cap_is_an_error_naming_it() -> None:
    with pytest.raises(OutputFilesError, match=r"output file /sandbox/big\.bin holds 101 bytes, over the 100-byte"):
        read_block(tar_of(("small", b"x"), ("big.bin", b"x" * 101)), ["/sandbox/*"], SMALL)
    assert read_block(tar_of(("edge", b"x" * 100)), ["/sandbox/*"], SMALL).files == {"/sandbox/edge": b"x" * 100}


def test_files_over_the_runs_cap_together_are_an_error_naming_the_one_that_crossed_it() -> None:
    with pytest.raises(OutputFilesError, match=r"over the 150-byte cap for a run .* at /sandbox/b"):
        read_block(tar_of(("a", b"x" * 100), ("b", b"x" * 51)), ["/sandbox/*"], SMALL)


def test_a_tar_cut_at_the_allowance_is_an_error_never_a_short_file() -> None:
    whole = tar_of(("a", b"x" * 90), ("b", b"y" * 90))
    limits = OutputLimits(max_file=100, max_total=200)
    cut = whole[: tar_max(limits)] if len(whole) > tar_max(limits) else whole
    assert read_block(cut, ["/sandbox/*"], limits).files["/sandbox/b"] == b"y" * 90
    tiny = OutputLimits(max_file=10**6, max_total=10)
    with pytest.raises(OutputFilesError, match="cap for a run"):
        read_block(tar_of(("a", b"x" * 9000))[: tar_max(tiny)], ["/sandbox/*"], tiny)


def test_garbage_is_an_error() -> None:
    with pytest.raises(OutputFilesError, match="could not be read back"):
        read_block(b"not a tar" * 100, ["/sandbox/a"], SMALL)


def test_names_that_leave_the_sandbox_are_dropped() -> None:
    got = read_block(tar_of(("../escape", b"x"), ("/abs", b"y"), ("ok", b"z")), ["/sandbox/*"], SMALL)
    assert got.files == {"/sandbox/ok": b"z"}


def test_the_trailer_filter_takes_the_files_block_out_of_stderr() -> None:
    block = b64encode(tar_of(("a.txt", b"hello")))
    stream = (
        MARK
        + b"start\n"
        + b"program stderr\n"
        + MARK
        + b"files\n"
        + block
        + b"\n"
        + MARK
        + b"files-end\n"
        + MARK
        + b"exit:0:0:::\n"
    )
    for size in (1, 7, len(stream)):
        trailer = TrailerFilter(NONCE, files_max=100_000)
        out = b"".join(trailer.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + trailer.flush()
        assert out == b"program stderr\n"
        assert trailer.files_complete and bytes(trailer.files or b"").strip() == block
        assert trailer.trailer is not None and trailer.trailer.kind == "exit"


def test_a_forged_files_line_cannot_swallow_the_exit_line_or_take_files_unasked() -> None:
    forged = MARK + b"start\n" + MARK + b"files\n" + b"AAAA" + MARK + b"exit:3:0:::\n"
    trailer = TrailerFilter(NONCE, files_max=10_000)
    trailer.feed(forged)
    assert trailer.trailer is not None and trailer.trailer.exit_code == 3  # the mark ended the block
    assert not trailer.files_complete
    unasked = TrailerFilter(NONCE)  # no output paths: a files line is removed, and nothing collected
    assert unasked.feed(MARK + b"start\n" + MARK + b"files\nAAAA\n") == b"AAAA\n"
    assert unasked.files is None


def test_the_files_block_is_held_to_its_allowance() -> None:
    trailer = TrailerFilter(NONCE, files_max=8)
    trailer.feed(MARK + b"start\n" + MARK + b"files\n" + b"A" * 100 + b"\n" + MARK + b"files-end\n")
    assert bytes(trailer.files or b"") == b"A" * 8


def test_files_are_written_under_the_out_dir_at_their_sandbox_paths(tmp_path: Path) -> None:
    write_output_files(str(tmp_path / "out"), {"/sandbox/a/b.bin": b"\0\1", "/sandbox/c": b"c"})
    assert (tmp_path / "out/a/b.bin").read_bytes() == b"\0\1" and (tmp_path / "out/c").read_bytes() == b"c"


@pytest.mark.parametrize("path", ["/sandbox/../../escape", "/etc/passwd", "/sandbox/", "relative"])
def test_a_path_from_a_hostile_server_never_writes_outside_the_out_dir(tmp_path: Path, path: str) -> None:
    with pytest.raises(UsageError):
        write_output_files(str(tmp_path / "out"), {path: b"x"})
    assert not (tmp_path / "escape").exists()


def test_a_symlink_in_the_out_dir_is_not_written_through(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "sub")
    os.symlink(tmp_path / "elsewhere" / "f", tmp_path / "out" / "f")
    with pytest.raises(UsageError, match="symlink"):
        write_output_files(str(tmp_path / "out"), {"/sandbox/sub/x": b"x"})
    with pytest.raises(UsageError, match="cannot write"):
        write_output_files(str(tmp_path / "out"), {"/sandbox/f": b"x"})
    assert list((tmp_path / "elsewhere").iterdir()) == []
