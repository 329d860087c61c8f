"""Packages on both engines: run --install, custom images and their labels, discovery, prebuilt images, pruning."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ISOL8, Isol8

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _labels(engine: str, image: str) -> dict[str, str]:
    ref = image if engine == "docker" or "/" in image.split(":")[0] else f"localhost/{image}"
    done = subprocess.run(
        [engine, "image", "inspect", "--format", "{{json .Config.Labels}}", ref], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _resolve(isol8: Isol8, runtime: str, *specs: str) -> dict[str, object]:
    args = [a for s in specs for a in ("--install", s)]
    done = isol8("resolve", "-r", runtime, "--json", *args)
    assert done.status == 0, done.stderr
    return json.loads(done.stdout)


def test_python_install_then_the_second_run_reuses_it(isol8: Isol8) -> None:
    code = "import six; print(six.__name__)"
    first = isol8("run", "--install", "six", "-e", code)
    assert (first.status, first.stdout) == (0, "six\n"), first.stderr
    second = isol8("--debug", "run", "--install", "six", "-e", code)
    assert (second.status, second.stdout) == (0, "six\n")
    assert "to install: nothing" in second.stderr
    assert " build " not in second.stderr  # no engine build on the second run


@pytest.mark.parametrize(
    ("runtime", "spec", "name", "source", "expected"),
    [
        ("node", "lodash@4", "esm.mjs", "import _ from 'lodash'; console.log(_.chunk([1, 2, 3, 4], 2).length)", "2"),
        ("node", "lodash@4", "cjs.cjs", "const _ = require('lodash'); console.log(typeof _.VERSION)", "string"),
        ("bun", "zod@3", "z.ts", "import { z } from 'zod'; console.log(z.string().parse('bun zod'))", "bun zod"),
        ("deno", "npm:zod@3", "z.mts", "import { z } from 'npm:zod@3'; console.log(z.string().parse('deno'))", "deno"),
    ],
)
def test_js_runtimes_install_and_import(
    isol8: Isol8, tmp_path: Path, runtime: str, spec: str, name: str, source: str, expected: str
) -> None:
    script = tmp_path / name
    script.write_text(source + "\n")
    done = isol8("run", "-r", runtime, "--install", spec, str(script))
    assert (done.status, done.stdout.strip()) == (0, expected), done.stderr


def test_installed_code_still_has_no_network(isol8: Isol8) -> None:
    code = (
        "import socket, six\n"
        "try:\n"
        "    socket.create_connection(('example.com', 443), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('blocked')\n"
    )
    done = isol8("run", "--install", "six", "-e", code)
    assert done.stdout == "blocked\n", done.stderr


def test_bash_has_no_runtime_installs(isol8: Isol8) -> None:
    done = isol8("run", "--cmd", "jq --version", "--install", "jq")
    assert done.status == 2
    assert "isol8 build --base bash" in done.stderr


@pytest.mark.parametrize(
    "spec",
    [
        "six; touch /tmp/pwned",
        "--index-url=https://example.invalid",
        "-e .",
        "six`id`",
        "six six",
        "six\nnumpy",
        "$(id)",
    ],
)
def test_bad_specs_are_refused_before_anything_runs(isol8: Isol8, spec: str) -> None:
    done = isol8("run", f"--install={spec}", "-e", "print(1)")  # the = form: argparse takes "-..." as a value
    assert done.status == 2
    assert "refusing package spec" in done.stderr
    assert isol8("build", "--base", "python", "--tag", "isol8-test-bad", f"--install={spec}").status == 2


@pytest.mark.parametrize("tag", ["Bad Tag", "x;rm", "-rf", "../up", "UPPER"])
def test_bad_tags_are_refused(isol8: Isol8, tag: str) -> None:
    done = isol8("build", "--base", "python", f"--tag={tag}", "--install", "six")
    assert done.status == 2
    assert "not a valid image name" in done.stderr


@pytest.fixture
def custom_image(isol8: Isol8, engine: str) -> object:
    tag = f"isol8-test-py-{os.getpid()}:v1"
    done = isol8("build", "--base", "python", "--tag", tag, "--install", "six", "--install", "colorama")
    assert done.status == 0, done.stderr
    yield tag
    subprocess.run([engine, "rmi", "-f", tag if engine == "docker" else f"localhost/{tag}"], capture_output=True)


def test_build_labels_and_discovery(isol8: Isol8, engine: str, custom_image: str) -> None:
    labels = _labels(engine, custom_image)
    assert labels["org.isol8.managed"] == "true"
    assert labels["org.isol8.runtime"] == "python"
    assert labels["org.isol8.dependencies"] == "colorama,six"
    assert len(labels["org.isol8.deps.hash"]) == 64
    resolved = dict(item.split("==") for item in labels["org.isol8.resolved"].split(","))
    assert set(resolved) == {"colorama", "six"}
    ref = custom_image if engine == "docker" else f"localhost/{custom_image}"
    # the newest exact match: this image, with nothing to install
    run = isol8(
        "--debug", "run", "--install", "colorama", "--install", "six", "-e", "import six, colorama; print('ok')"
    )
    assert run.stdout == "ok\n"
    assert f"resolve: exact {ref}" in run.stderr
    assert "to install: nothing" in run.stderr
    for specs in (["SIX", "Colorama"], [f"six=={resolved['six']}", "colorama"]):
        assert _resolve(isol8, "python", *specs) == {**_resolve(isol8, "python", *specs), "image": ref, "install": []}
    pinned_elsewhere = _resolve(isol8, "python", "six==0.0.1")
    assert pinned_elsewhere["image"] != ref
    assert pinned_elsewhere["install"] == ["six==0.0.1"]


def test_superset_and_partial_matches(isol8: Isol8, engine: str, custom_image: str) -> None:
    ref = custom_image if engine == "docker" else f"localhost/{custom_image}"
    only_six = _resolve(isol8, "python", "six")
    assert only_six["match"] in ("exact", "superset")
    partial = _resolve(isol8, "python", "colorama", "isol8-no-such-package-xyz")
    assert partial["match"] == "partial"
    assert partial["install"] == ["isol8-no-such-package-xyz"]
    again = _resolve(isol8, "python", "colorama", "isol8-no-such-package-xyz")
    assert again == partial  # deterministic
    assert isol8("images", "--json").status == 0
    assert ref in {t for row in json.loads(isol8("images", "--json").stdout) for t in row["tags"]} or any(
        custom_image in t for row in json.loads(isol8("images", "--json").stdout) for t in row["tags"]
    )


def test_same_definition_is_a_fast_no_op_and_a_change_rebuilds(isol8: Isol8, engine: str, custom_image: str) -> None:
    before = _labels(engine, custom_image)["org.isol8.deps.hash"]
    again = isol8("build", "--base", "python", "--tag", custom_image, "--install", "colorama,six")
    assert again.status == 0 and "up to date" in again.stdout
    assert again.seconds < 2.0
    changed = isol8(
        "build",
        "--base",
        "python",
        "--tag",
        custom_image,
        "--install",
        "colorama,six",
        "--setup",
        "echo baked > /etc/isol8-marker",
    )
    assert changed.status == 0 and ": built" in changed.stdout, changed.stderr
    labels = _labels(engine, custom_image)
    assert labels["org.isol8.deps.hash"] != before
    assert labels["org.isol8.setup"] == "echo baked > /etc/isol8-marker"
    ran = isol8("run", "--image", custom_image, "--cmd", "cat /etc/isol8-marker")
    assert ran.stdout == "baked\n"


def test_setup_script_runs_in_the_build_container_not_on_the_host(isol8: Isol8, engine: str, tmp_path: Path) -> None:
    marker = tmp_path / "escaped"
    tag = f"isol8-test-setup-{os.getpid()}"
    script = tmp_path / "setup.sh"
    script.write_text(f"touch {marker}; echo $(id -u) > /etc/isol8-setup-uid\n")
    try:
        done = isol8("build", "--base", "bash", "--tag", tag, "--setup", str(script))
        assert done.status == 0, done.stderr
        assert not marker.exists()
        assert _labels(engine, tag)["org.isol8.setup"] == script.read_text()
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True)


def test_failed_install_in_build_exits_1_with_the_installers_output(isol8: Isol8) -> None:
    done = isol8("build", "--base", "python", "--tag", "isol8-test-fail", "--install", "isol8-no-such-package-xyz")
    assert done.status == 1
    assert "isol8-no-such-package-xyz" in done.stderr


def test_failed_install_in_run_exits_125(isol8: Isol8) -> None:
    done = isol8("run", "--install", "isol8-no-such-package-xyz", "-e", "print(1)")
    assert done.status == 125
    assert "package install failed" in done.stderr
    assert "No matching distribution" in done.stderr


def test_installs_trust_the_hosts_ca_bundle_by_default(isol8: Isol8, engine: str, tmp_path: Path) -> None:
    """This kind of machine reaches the package index through a TLS-intercepting proxy that only the
    host's CA bundle trusts: `caBundle: auto` (the default) makes an install work with no ISOL8_*
    variable, and `none` makes it fail. `build` of a new tag always installs (a run could reuse a
    cached image instead)."""
    assert not [name for name in os.environ if name.startswith("ISOL8_")]
    tag = f"isol8-test-ca-{os.getpid()}"
    try:
        built = isol8("build", "--base", "python", "--tag", tag, "--install", "six", cwd=tmp_path)
        assert built.status == 0, built.stderr
        ref = tag if engine == "docker" else f"localhost/{tag}"
        ran = isol8("run", "--image", ref, "-e", "import six; print(six.__name__)", cwd=tmp_path)
        assert ran.stdout == "six\n", ran.stderr
        (tmp_path / "isol8.config.json").write_text('{"packages": {"caBundle": "none"}}')
        refused = isol8("build", "--base", "python", "--tag", tag + "-none", "--install", "six", cwd=tmp_path)
        assert refused.status == 1
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    finally:
        subprocess.run([engine, "rmi", "-f", tag, tag + "-none"], capture_output=True)


def test_prebuilt_images_from_the_config(isol8: Isol8, engine: str, tmp_path: Path) -> None:
    pid = os.getpid()
    config = tmp_path / "isol8.config.json"
    entries = [
        {"tag": f"isol8-test-pre-a-{pid}", "runtime": "python", "installPackages": ["six"]},
        {"tag": f"isol8-test-pre-b-{pid}", "runtime": "node", "installPackages": ["is-number@7"]},
    ]
    config.write_text(json.dumps({"prebuiltImages": entries}))  # the user file's baseImages still count
    try:
        first = isol8("setup", cwd=tmp_path)
        assert first.status == 0, first.stderr
        assert "building isol8:" not in first.stderr  # no base image rebuilt
        assert [line.split(":")[0] for line in first.stdout.splitlines() if "isol8-test-pre" in line] == [
            e["tag"] for e in entries
        ]
        second = isol8("setup", cwd=tmp_path)
        assert second.seconds < 2.0
        assert all("up to date" in line for line in second.stdout.splitlines())
        entries[1]["installPackages"] = ["is-number@7", "is-odd@3"]
        config.write_text(json.dumps({"prebuiltImages": entries}))
        third = isol8("setup", cwd=tmp_path)
        changed = [line for line in third.stdout.splitlines() if ": built" in line]
        assert changed and all(entries[1]["tag"] in line for line in changed)
    finally:
        for e in entries:
            subprocess.run([engine, "rmi", "-f", e["tag"]], capture_output=True)


def dangling_images(engine: str) -> set[str]:
    done = subprocess.run([engine, "images", "-q", "--no-trunc", "--filter", "dangling=true"], capture_output=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.decode().split())


def test_replaced_and_failed_builds_leave_no_dangling_images(isol8: Isol8, engine: str) -> None:
    before = dangling_images(engine)
    tag = f"isol8-test-replaced-{os.getpid()}"
    try:
        for i in range(5):
            built = isol8("build", "--base", "bash", "--tag", tag, "--setup", f"echo {i} > /etc/which")
            assert built.status == 0, built.stderr
        for i in range(2):
            failed = isol8("build", "--base", "bash", "--tag", tag, "--setup", f"echo {i} > /etc/which; exit 3")
            assert failed.status == 1, failed.stderr
        assert dangling_images(engine) - before == set()
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True)


def leave_a_failed_build_layer(engine: str, tmp_path: Path) -> str:
    """What an engine's own failed build on an isol8 base leaves: an untagged layer with isol8's labels."""
    (tmp_path / "Dockerfile").write_text(f"FROM isol8:bash\nLABEL test.leftover={os.getpid()}\nRUN exit 3\n")
    subprocess.run([engine, "build", "--force-rm", str(tmp_path)], capture_output=True)
    mine = [
        engine,
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        "dangling=true",
        "--filter",
        f"label=test.leftover={os.getpid()}",
    ]
    left = subprocess.run(mine, capture_output=True, text=True).stdout.split()
    assert len(left) == 1, f"the engine's failed build left {left}"
    return left[0]


def test_a_failed_build_removes_only_its_own_layers_whatever_it_prints(
    isol8: Isol8, engine: str, tmp_path: Path
) -> None:
    """A setup script that prints a builder-style step line naming another dangling image."""
    other = leave_a_failed_build_layer(engine, tmp_path)
    try:
        forged = f'echo " ---> {other[:12]}"; echo "--> {other[:11]}"; exit 3'
        done = isol8("build", "--base", "bash", "--tag", f"isol8-test-forged-{os.getpid()}", "--setup", forged)
        assert done.status == 1
        assert subprocess.run([engine, "image", "inspect", other], capture_output=True).returncode == 0
    finally:
        subprocess.run([engine, "rmi", other], capture_output=True)


def test_an_interrupted_build_leaves_no_dangling_layer(engine: str) -> None:
    """`isol8 build ... | head`: the reader goes, the build is stopped, and its layers go too."""
    before = dangling_images(engine)
    tag = f"isol8-test-cut-{os.getpid()}"
    argv = [ISOL8, "--engine", engine, "build", "--base", "bash", "--tag", tag, "--setup", "sleep 3; echo done"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert dangling_images(engine) - before == set()
    assert subprocess.run([engine, "image", "inspect", tag], capture_output=True).returncode != 0


def test_cleanup_images_removes_only_isol8_images_not_in_use(isol8: Isol8, engine: str, tmp_path: Path) -> None:
    tag = f"isol8-test-prune-{os.getpid()}"
    busy = f"isol8-test-busy-{os.getpid()}"
    for t in (tag, busy):
        assert isol8("build", "--base", "bash", "--tag", t, "--setup", f"echo {t} > /etc/which").status == 0
    leftover = leave_a_failed_build_layer(engine, tmp_path)
    unrelated = "localhost/isol8-bootstrap/debian:bookworm"
    container = f"isol8-test-user-{os.getpid()}"
    busy_ref = busy if engine == "docker" else f"localhost/{busy}"
    subprocess.run([engine, "run", "-d", "--name", container, busy_ref, "sleep", "60"], check=True, capture_output=True)
    try:
        dry = isol8("cleanup", "--images", "--keep-base", "--dry-run")
        assert dry.status == 0 and tag in dry.stdout
        done = isol8("cleanup", "--images", "--keep-base", "--force")
        assert done.status == 0, done.stderr
        exists = lambda ref: subprocess.run([engine, "image", "inspect", ref], capture_output=True).returncode == 0  # noqa: E731
        assert not exists(tag if engine == "docker" else f"localhost/{tag}")
        assert exists(busy_ref)  # a container uses it
        assert not exists(leftover)  # untagged, with a base's labels: a leftover, not a base to keep
        assert exists(unrelated)  # not isol8's
        assert exists("isol8:bash" if engine == "docker" else "localhost/isol8:bash")  # --keep-base
    finally:
        subprocess.run([engine, "rm", "-f", container], capture_output=True)
        subprocess.run([engine, "rmi", "-f", busy_ref], capture_output=True)
