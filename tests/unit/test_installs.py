"""Run-time installs (isol8/core/installs.py) over a backend whose installer is scripted: what is
sent in, what is kept of what comes out, and that the installer is always gone afterwards."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from isol8 import runtimes
from isol8.config import PackageSettings
from isol8.core.installs import INSTALLER, NOT_UNPACKED, REPLACE, PackageTree, install_tree, replace_in, unpacked_kib
from isol8.core.sandbox import SandboxPolicy
from isol8.ecosystems import parse_specs
from isol8.errors import ImageMissing, PackagesNotUnpacked, RunFailed, UsageError
from tests.unit.test_outputs import tar_of

PYTHON = runtimes.get("python")
SIX = parse_specs(PYTHON, ["six"])
NO_CA = PackageSettings(ca_bundle="none")


class Installer:
    """A finished installer process: its output, its exit status (None: still running at the deadline)."""

    argv = ("docker", "run", "isol8-install-x")
    network_log = None

    def __init__(self, out: list[tuple[str, bytes]], code: int | None) -> None:
        self.out, self.code, self.killed = out, code, False

    def chunks(self, deadline: Any = None) -> Iterator[tuple[str, bytes]]:
        yield from self.out

    def wait(self, timeout: float | None = None) -> int | None:
        return self.code

    def __enter__(self) -> Installer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.killed = self.code is None


class ScriptedBackend:
    builds_images = True  # an engine's: it is asked for the image first

    def __init__(self, installer: Installer, image: bool = True) -> None:
        self.installer, self.has_image = installer, image
        self.spec: Any = None
        self.command: list[str] = []
        self.stdin: list[bytes] = []
        self.removed: list[str] = []
        self.disowned: list[str] = []

    def image(self, ref: str) -> object | None:
        return object() if self.has_image else None

    def run_installer(self, spec: Any, command: list[str], *, stdin: Any, backstop_s: int) -> Installer:
        self.spec, self.command, self.stdin = spec, command, list(stdin)
        return self.installer

    def remove_containers(self, ids: list[str]) -> None:
        self.removed.extend(ids)

    def disown(self, names: Any = ()) -> None:
        self.disowned.extend(names)


def install(backend: ScriptedBackend, policy: SandboxPolicy | None = None, **kwargs: Any) -> Any:
    return install_tree(
        backend,  # type: ignore[arg-type]
        PYTHON,
        "isol8:python",
        SIX,
        policy=policy or SandboxPolicy(network="host"),
        registry=NO_CA,
        timeout_s=30,
        **kwargs,
    )


def test_the_installer_gets_the_fixed_script_the_specs_as_files_and_no_network_of_the_runs() -> None:
    backend = ScriptedBackend(Installer([("stdout", b"TREE"), ("stderr", b"Collecting six\n")], 0))
    tree = install(backend, labels={"org.isol8.server.id": "s1"})
    assert (tree.directory, tree.tar, dict(tree.env)) == (".local", b"TREE", {"PYTHONUSERBASE": "/sandbox/.local"})
    assert backend.command[:3] == ["-c", INSTALLER, "isol8-install"]
    # the install finds the image's interpreter; isol8's own tar after it, only the system's
    assert 'PATH=$image_path bash -c "$2"' in INSTALLER
    assert INSTALLER.index("image_path=$PATH") < INSTALLER.index("PATH=/usr/local/sbin")
    assert backend.command[3] == ".local" and "--only-binary=:all:" in backend.command[4]
    assert backend.command[5] == "35"  # the in-container watchdog: the time limit and a grace
    assert "six" not in " ".join(backend.command)  # the specs travel as files only
    with tarfile.open(fileobj=io.BytesIO(b"".join(backend.stdin))) as sent:
        assert sent.extractfile("requirements.txt").read() == b"six\n"  # type: ignore[union-attr]
    assert backend.spec.policy.network == "none" and backend.spec.policy.egress is None  # a host run's too
    assert backend.spec.labels["org.isol8.server.id"] == "s1"
    assert backend.disowned == [backend.spec.name] and backend.removed == []  # gone with --rm


def test_a_failed_install_says_the_installers_last_line_and_removes_it() -> None:
    words = b"ERROR: Could not find a version that satisfies the requirement six\n"
    backend = ScriptedBackend(Installer([("stderr", b"Collecting six\n" + words)], 1))
    with pytest.raises(RunFailed, match="package install failed \\(exit 1\\): ERROR: Could not find") as caught:
        install(backend)
    assert "Collecting six" in caught.value.stderr
    assert backend.removed == [backend.spec.name]


def test_a_tree_over_the_smaller_of_sandbox_and_memory_is_refused_and_the_installer_removed() -> None:
    policy = SandboxPolicy(memory="6m", sandbox_size="8m")
    flood = [("stdout", b"x" * (1 << 20))] * 7
    backend = ScriptedBackend(Installer(flood, 0))
    with pytest.raises(RunFailed, match=f"exceed {6 << 20} bytes"):
        install(backend, policy)
    assert backend.removed == [backend.spec.name]


def test_an_installer_still_running_at_the_deadline_is_a_timeout_never_a_tree() -> None:
    backend = ScriptedBackend(Installer([("stdout", b"PART")], None))
    with pytest.raises(RunFailed, match="took longer than 30s"):
        install(backend)
    assert backend.installer.killed and backend.removed == [backend.spec.name]


def test_a_missing_image_is_asked_of_the_engine_before_anything_starts() -> None:
    backend = ScriptedBackend(Installer([], 0), image=False)
    with pytest.raises(ImageMissing, match="image isol8:python not found"):
        install(backend)
    assert backend.spec is None


def test_bash_has_no_run_time_installs() -> None:
    bash = runtimes.get("bash")
    with pytest.raises(UsageError, match="bash has no run-time installs"):
        install_tree(
            ScriptedBackend(Installer([], 0)),  # type: ignore[arg-type]
            bash,
            "isol8:bash",
            (),
            policy=SandboxPolicy(),
            registry=NO_CA,
            timeout_s=30,
        )


def test_a_trees_room_counts_whole_pages_per_file_and_a_kib_per_entry() -> None:
    """Many small files take a page each in a tmpfs: the room asked for is never the tar's size."""
    tree = tar_of((".local", None), (".local/a", b""), (".local/b", b"x"), (".local/c", b"x" * 4097))
    assert unpacked_kib(tree) == (0 + 1 + 2) * 4 + 4


class Unpacker(Installer):
    argv = ("docker", "exec", "-i", "sess")


def test_a_sessions_tree_is_unpacked_by_the_fixed_script_told_its_room() -> None:
    backend = ScriptedBackend(Unpacker([], 0))
    execs: list[tuple[str, list[str], list[bytes]]] = []

    def exec_(container: str, argv: list[str], *, stdin: Any) -> Unpacker:
        execs.append((container, argv, list(stdin)))
        return backend.installer  # type: ignore[return-value]

    backend.exec = exec_  # type: ignore[attr-defined]
    tree = PackageTree(SIX, ".local", tar_of((".local", None), (".local/six.py", b"x" * 5000)), {})
    replace_in(backend, "sess", tree, 60)  # type: ignore[arg-type]
    assert execs == [("sess", ["-c", REPLACE, "isol8-packages", ".local", "10"], [tree.tar])]


def test_a_tree_that_does_not_fit_says_the_session_is_unchanged() -> None:
    said = [("stderr", b"isol8: 10 KiB do not fit in the memory limit (12 KiB spare)\n")]
    backend = ScriptedBackend(Unpacker(said, NOT_UNPACKED))
    backend.exec = lambda container, argv, *, stdin: backend.installer  # type: ignore[attr-defined]
    tree = PackageTree(SIX, ".local", tar_of((".local", None)), {})
    with pytest.raises(PackagesNotUnpacked, match="do not fit in the memory limit") as caught:
        replace_in(backend, "sess", tree, 60)  # type: ignore[arg-type]
    assert caught.value.unchanged


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (NOT_UNPACKED, "they did not fit in /sandbox or in the memory limit"),
        (137, "it was killed, most likely at the session's memory limit"),
        (1, "it ended with exit status 1"),
    ],
)
def test_an_unpacker_that_says_nothing_is_reported_by_how_it_ended(code: int, words: str) -> None:
    """No timeout: a refusal whose words the engine lost, a kill at the memory limit, a failure."""
    backend = ScriptedBackend(Unpacker([], code))
    backend.exec = lambda container, argv, *, stdin: backend.installer  # type: ignore[attr-defined]
    tree = PackageTree(SIX, ".local", tar_of((".local", None)), {})
    with pytest.raises(PackagesNotUnpacked, match=f"could not be unpacked: {words}$") as caught:
        replace_in(backend, "sess", tree, 60)  # type: ignore[arg-type]
    assert caught.value.unchanged == (code == NOT_UNPACKED)
