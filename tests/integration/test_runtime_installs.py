"""Run-time installs on both engines: `--install-strategy runtime` and `packages.strategy`, per runtime,
the network they need kept from the program, their failures and their leftovers (none)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Isol8, assert_no_containers, isol8_containers, start_run

pytestmark = pytest.mark.usefixtures("no_leftovers")
RUNTIME = ("--install-strategy", "runtime")


def _auto_images(engine: str) -> set[str]:
    done = subprocess.run(
        [engine, "images", "-q", "--no-trunc", "--filter", "label=org.isol8.auto=true"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_python_packages_are_installed_into_the_sandbox_and_no_image_is_built(isol8: Isol8, engine: str) -> None:
    before = _auto_images(engine)
    code = "import six, sys; print(six.__file__); print(sys.flags.no_user_site)"
    done = isol8("run", *RUNTIME, "--install", "six", "-e", code)
    assert done.status == 0, done.stderr
    path, no_user_site = done.stdout.split()
    assert path.startswith("/sandbox/.local/lib/python3") and path.endswith("/six.py")
    assert no_user_site == "0"
    assert _auto_images(engine) == before  # nothing was baked


@pytest.mark.parametrize(
    ("runtime", "spec", "name", "source", "expected"),
    [
        (
            "node",
            "is-number@7",
            "esm.mjs",  # import ignores NODE_PATH: the packages must be in /sandbox/node_modules
            "import n from 'is-number'; console.log(n(5), import.meta.resolve('is-number'))",
            "true file:///sandbox/node_modules/is-number/index.js",
        ),
        (
            "node",
            "is-number@7",
            "cjs.cjs",
            "console.log(require('is-number')('x'), require.resolve('is-number'))",
            "false /sandbox/node_modules/is-number/index.js",
        ),
        (
            "bun",
            "is-number@7",
            "b.ts",
            "import n from 'is-number'; console.log(n(1), require.resolve('is-number'))",
            "true /sandbox/node_modules/is-number/index.js",
        ),
        (
            "deno",
            "npm:is-number@7",
            "d.mts",
            "import n from 'npm:is-number@7'; console.log(n(2), Deno.env.get('DENO_DIR'))",
            "true /sandbox/.deno",
        ),
    ],
)
def test_js_runtimes_install_into_the_sandbox(
    isol8: Isol8, tmp_path: Path, runtime: str, spec: str, name: str, source: str, expected: str
) -> None:
    script = tmp_path / name
    script.write_text(source + "\n")
    done = isol8("run", "-r", runtime, *RUNTIME, "--install", spec, str(script))
    assert (done.status, done.stdout.strip()) == (0, expected), done.stderr


def test_the_program_still_has_no_network_while_its_packages_had_one(isol8: Isol8) -> None:
    code = (
        "import os, socket, six\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 443), timeout=3)\n"
        "    print('connected')\n"
        "except OSError:\n"
        "    print('blocked')\n"
    )
    done = isol8("run", *RUNTIME, "--install", "six", "-e", code)
    assert (done.status, done.stdout) == (0, "['lo']\nblocked\n"), done.stderr


def test_the_config_chooses_the_strategy_and_the_flag_wins(isol8: Isol8, tmp_path: Path) -> None:
    (tmp_path / "isol8.config.json").write_text(json.dumps({"packages": {"strategy": "runtime"}}))
    code = "import six; print(six.__file__.startswith('/sandbox/'))"
    by_config = isol8("run", "--install", "six", "-e", code, cwd=tmp_path)
    assert (by_config.status, by_config.stdout) == (0, "True\n"), by_config.stderr
    by_flag = isol8("run", "--install-strategy", "image", "--install", "six", "-e", code, cwd=tmp_path)
    assert (by_flag.status, by_flag.stdout) == (0, "False\n"), by_flag.stderr


def test_a_failed_install_is_exit_125_with_the_installers_words_and_leaves_nothing(isol8: Isol8, engine: str) -> None:
    done = isol8("run", *RUNTIME, "--install", "isol8-no-such-package-zz9", "-e", "print('never')")
    assert done.status == 125, done.stderr
    assert "never" not in done.stdout
    assert "package install failed" in done.stderr
    assert "isol8-no-such-package-zz9" in done.stderr  # pip's own words say which


def test_packages_bigger_than_the_sandbox_are_a_clear_error(isol8: Isol8) -> None:
    """requests and its dependencies take some 3 MB in /sandbox/.local: a 1 MiB sandbox cannot hold them."""
    done = isol8("run", *RUNTIME, "--sandbox-size", "1m", "--install", "requests", "-e", "print('never')")
    assert done.status == 125, done.stderr
    assert "never" not in done.stdout
    assert "No space left on device" in done.stderr or "installed packages exceed" in done.stderr, done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_install_leaves_no_installer_behind(engine: str, signum: int) -> None:
    """A signal while the installer fetches: isol8 removes it, and says so."""
    proc = start_run(engine, *RUNTIME, "--install", "requests,six,idna,certifi", "-e", "print('never')")
    deadline = time.monotonic() + 60
    while not [c for c in isol8_containers(engine, proc.pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert isol8_containers(engine, proc.pid), "the installer never started"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (128 + signum, ""), err
    assert "received; what isol8 had started was removed" in err
    assert_no_containers(engine)
