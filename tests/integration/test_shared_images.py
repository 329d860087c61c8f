"""A fleet of engines shares custom images through a registry (Debian's docker-registry, started
here): `isol8 build --push` on docker, then `isol8 run --install` on a second engine, podman
through its API socket, finds the pushed image with skopeo and pulls it instead of building.
An image in that repository that claims isol8's labels but carries another seccomp profile (a
remote podman would run it with that profile) is never pulled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ISOL8, _answers
from tests.integration.remote import REGISTRY, podman_service, registry


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(a config naming the registry's repository, the podman socket)."""
    problems = [p for p in (_answers("docker"), _answers("podman")) if p]
    if not os.path.exists(REGISTRY) or shutil.which("skopeo") is None:
        problems.append("docker-registry and skopeo (Debian packages) are needed")
    if problems:
        if os.environ.get("CI"):
            pytest.fail("; ".join(problems))
        pytest.skip("; ".join(problems))
    root = tmp_path_factory.mktemp("shared")
    with registry(root / "registry") as where, podman_service(root / "podman.sock") as sock:
        config = root / "isol8.json"
        repository = f"{where}/isol8-test-{os.getpid()}"
        config.write_text(json.dumps({"registry": {"repository": repository, "tlsVerify": False}}))
        yield config, sock


def _isol8(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISOL8, "--config", str(config), *args], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )


def _images(engine: str, *filters: str) -> set[str]:
    argv = [engine, "images", "-q", "--no-trunc", *(f"--filter={f}" for f in filters)]
    return set(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split())


def _remove_iniconfig_images(engine: str) -> None:
    """The images with iniconfig (only this file's tests use it)."""
    for image in _images(engine, "label=org.isol8.dependencies=iniconfig"):
        subprocess.run([engine, "rmi", "-f", image], capture_output=True)


def test_an_image_pushed_from_one_engine_is_pulled_by_another_instead_of_built(fleet: tuple[Path, Path]) -> None:
    config, sock = fleet
    tag = f"isol8-test-shared-{os.getpid()}:1"
    built = _isol8(
        config, "--engine", "docker", "build", "--base", "python", "--tag", tag, "--install", "iniconfig", "--push"
    )
    assert built.returncode == 0, built.stderr
    pushed = built.stdout.split("pushed: ")[1].split()[0]
    repository = json.loads(config.read_text())["registry"]["repository"]
    assert pushed.startswith(f"{repository}/python:")
    # an impostor, pushed later (newer wins a tie): isol8's labels, a seccomp profile that allows all
    forged = f"{repository}/python:forged"
    dockerfile = f'FROM {tag}\nLABEL io.containers.seccomp.profile=\'{{"defaultAction":"SCMP_ACT_ALLOW"}}\'\n'
    subprocess.run(
        ["docker", "build", "-q", "-t", forged, "-"], input=dockerfile, text=True, check=True, capture_output=True
    )
    subprocess.run(["docker", "push", "-q", forged], check=True, capture_output=True)
    _remove_iniconfig_images("podman")  # a leftover would be found locally, not pulled
    auto_before = _images("podman", "label=org.isol8.auto=true")
    try:
        podman = ("--engine", "podman", "--url", f"unix://{sock}")
        program = "import iniconfig; print(iniconfig.__name__)"
        run = _isol8(config, *podman, "--debug", "run", "--install", "iniconfig", "-e", program)
        assert (run.returncode, run.stdout) == (0, "iniconfig\n"), run.stderr
        assert f"pulling {pushed}" in run.stderr and "resolve: exact" in run.stderr, run.stderr
        assert " build " not in run.stderr  # nothing was built on podman
        assert _images("podman", "label=org.isol8.auto=true") == auto_before
        assert _images("podman", f"reference={pushed}")  # the pushed image, pulled
        assert not _images("podman", f"reference={forged}")  # never the impostor
        again = _isol8(config, *podman, "--debug", "run", "--install", "iniconfig", "-e", program)
        assert again.returncode == 0 and "pulling" not in again.stderr, again.stderr  # it has it now
    finally:
        _remove_iniconfig_images("podman")  # pulled by digest: they may have no name
        subprocess.run(["docker", "rmi", "-f", tag, pushed, forged], capture_output=True)


def test_setup_pushes_the_prebuilt_images_that_ask_for_it(fleet: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = fleet
    settings = json.loads(config.read_text())
    repository = settings["registry"]["repository"]
    tag = f"isol8-test-prebuilt-{os.getpid()}:1"
    explicit = f"{repository}/elsewhere:{os.getpid()}"
    settings["prebuiltImages"] = [
        {"tag": tag, "runtime": "python", "installPackages": ["iniconfig"], "push": True},
        {"tag": f"{tag}b", "runtime": "python", "installPackages": ["iniconfig"], "push": explicit},
    ]
    with_prebuilt = tmp_path / "isol8.json"
    with_prebuilt.write_text(json.dumps(settings))
    done = _isol8(with_prebuilt, "--engine", "docker", "setup", "--runtime", "python")
    pushed: list[str] = []
    try:
        assert done.returncode == 0, done.stderr
        pushed = [line.split("pushed: ")[1] for line in done.stdout.splitlines() if "pushed: " in line]
        assert len(pushed) == 2 and pushed[0].startswith(f"{repository}/python:") and pushed[1] == explicit
        listed = subprocess.run(
            ["skopeo", "list-tags", "--tls-verify=false", f"docker://{repository}/elsewhere"],
            capture_output=True,
            text=True,
        )
        assert json.loads(listed.stdout)["Tags"] == [str(os.getpid())], listed.stderr  # in the registry
    finally:
        subprocess.run(["docker", "rmi", "-f", tag, f"{tag}b", *pushed], capture_output=True)


def test_a_push_without_a_registry_host_is_refused_before_anything_is_built(fleet: tuple[Path, Path]) -> None:
    config, _ = fleet
    done = _isol8(
        config, "--engine", "docker", "build", "--base", "python", "--tag", "x:1", "--install", "six", "--push", "x:1"
    )
    assert done.returncode == 2 and "names no registry host" in done.stderr, done.stderr
