"""Output files on both engines: copied out byte for byte before the container goes, within caps.

The server's `outputPaths` are in tests/integration/test_server.py."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from tests.integration.conftest import Isol8, assert_no_containers

WRITES_10_MB = (
    "import hashlib, os\n"
    "data = os.urandom(10 * 2**20)\n"
    "open('/sandbox/plot.png', 'wb').write(data)\n"
    "print(hashlib.sha256(data).hexdigest())\n"
)
MAKES_A_TREE = (
    "mkdir -p out/deep && printf 'a,1\\n' > out/a.csv && printf '\\0\\377' > out/deep/b.csv && echo no > out/c.txt"
    " && ln -s /etc/passwd link && ln -s /etc etclink && echo made"
)


def test_a_binary_output_file_comes_out_byte_identical(isol8: Isol8, tmp_path: Path, engine: str) -> None:
    out = tmp_path / "out"
    done = isol8("run", "--output-path", "/sandbox/plot.png", "--out-dir", str(out), "-e", WRITES_10_MB)
    assert done.status == 0, done.stderr
    written = (out / "plot.png").read_bytes()
    assert len(written) == 10 * 2**20
    assert hashlib.sha256(written).hexdigest() == done.stdout.strip()
    assert list(out.iterdir()) == [out / "plot.png"]
    assert_no_containers(engine)


def test_patterns_missing_paths_and_symlinks(isol8: Isol8, tmp_path: Path) -> None:
    done = isol8(
        "run",
        "--json",
        *("--output-path", "out/*.csv", "--output-path", "link", "--output-path", "etclink/passwd"),
        *("--output-path", "/sandbox/none"),
        "--cmd",
        MAKES_A_TREE,
    )
    assert done.status == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stdout"] == "made\n"
    files = {path: base64.b64decode(data) for path, data in result["files"].items()}
    assert files == {"/sandbox/out/a.csv": b"a,1\n", "/sandbox/out/deep/b.csv": b"\0\xff"}  # * crosses /
    # a symlink is never followed: neither as the file nor as a folder on the way
    assert result["missingFiles"] == ["/sandbox/link", "/sandbox/etclink/passwd", "/sandbox/none"]
    assert "isol8: no file matches output path /sandbox/none" in done.stderr


def test_a_file_over_the_cap_is_an_error_naming_it_and_the_output_is_kept(isol8: Isol8, tmp_path: Path) -> None:
    (tmp_path / "isol8.config.json").write_text(json.dumps({"outputFiles": {"maxFileSize": "1m"}}))
    code = "open('/sandbox/big.bin', 'wb').write(b'x' * (2 * 2**20)); print('wrote it')"
    done = isol8("run", "--output-path", "big.bin", "--out-dir", "out", "-e", code, cwd=tmp_path)
    assert done.status == 1
    assert done.stdout == "wrote it\n"
    assert "output file /sandbox/big.bin holds 2097152 bytes, over the 1048576-byte cap" in done.stderr
    assert not (tmp_path / "out" / "big.bin").exists()  # never a cut file
    (tmp_path / "isol8.config.json").write_text(json.dumps({"outputFiles": {"maxTotalSize": "3m"}}))
    two = "for n in 'ab': open(f'/sandbox/{n}.bin', 'wb').write(b'x' * (2 * 2**20))"
    over = isol8("run", "--json", "--output-path", "*.bin", "-e", two, cwd=tmp_path)
    assert over.status == 1 and "over the 3145728-byte cap for a run (outputFiles.maxTotalSize)" in over.stderr


def test_output_paths_need_somewhere_to_go_and_stay_inside_the_sandbox(isol8: Isol8) -> None:
    nowhere = isol8("run", "--output-path", "a", "-e", "1")
    assert nowhere.status == 2 and "--output-path needs --out-dir" in nowhere.stderr
    outside = isol8("run", "--json", "--output-path", "/etc/passwd", "-e", "1")
    assert outside.status == 2 and "inside /sandbox" in outside.stderr
