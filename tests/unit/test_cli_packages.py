"""`build`, `images`, `resolve` and `run --install` in process: usage errors, and flows over a faked engine (`fp`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import isol8.backends.engine.detect
from isol8.backends.engine.backend import EngineBackend
from isol8.backends.engine.dialect import DOCKER
from isol8.backends.engine.retry import RetryPolicy
from isol8.frontends.cli.app import App
from tests.conftest import CliResult

RunCli = Callable[..., CliResult]
VERSION = ["docker", "version", "--format", "{{.Server.Version}}"]
LIST_PYTHON = ["docker", "images", "-q", "--no-trunc", "--filter", "label=org.isol8.runtime=python"]
DATA = Path(__file__).resolve().parent.parent / "data" / "docker"


def register_unreachable(fp: Any, argv: list[str]) -> None:
    """argv fails as docker does when its daemon is down (recorded by scripts/record-fixtures)."""
    code = json.loads((DATA / "exit-codes.json").read_text())["engine-unreachable"]
    fp.register(argv, stderr=(DATA / "engine-unreachable.stderr").read_text(), returncode=code)


@pytest.fixture(autouse=True)
def _isolated(isolated: Path) -> Path:
    return isolated


@pytest.fixture
def docker(fp: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """App.backend is a docker EngineBackend whose every command goes to `fp` (strict: unregistered argv fails).

    One attempt per call, so a failing engine call is seen once and nothing sleeps.
    """

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s")

    engine = EngineBackend(DOCKER, retry=RetryPolicy(attempts=1), sleep=no_sleep)
    monkeypatch.setattr(App, "backend", property(lambda app: engine))
    return fp


def assert_usage_error(result: CliResult, *fragments: str) -> None:
    status, out, err = result
    assert status == 2, err
    assert out == ""
    assert "internal error" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


# ---- build ---------------------------------------------------------------------------------------


def test_build_with_neither_packages_nor_setup_returns_2(run_cli: RunCli, docker: Any) -> None:
    docker.register(VERSION, stdout="27.1.0\n")
    result = run_cli("build", "--base", "python", "--tag", "my-py")
    assert_usage_error(result, "isol8: error: nothing to build", "--install", "--setup")
    assert len(docker.calls) <= 1


@pytest.mark.parametrize(
    ("push", "fragment"),
    [
        ([], "--push without a reference needs the config's registry.repository"),
        (["me/img:1"], "names no registry host"),  # it would go to the engine's default registry
        (["localhost:5000/Bad"], "not a valid image name"),
    ],
)
def test_a_push_that_cannot_happen_is_refused_before_any_engine_call(
    run_cli: RunCli, docker: Any, push: list[str], fragment: str
) -> None:
    result = run_cli("build", "--base", "python", "--tag", "my-py", "--install", "six", "--push", *push)
    assert_usage_error(result, fragment)
    assert not docker.calls


def test_build_with_neither_packages_nor_setup_returns_2_when_the_daemon_is_down(run_cli: RunCli, docker: Any) -> None:
    register_unreachable(docker, VERSION)
    assert_usage_error(run_cli("build", "--base", "python", "--tag", "my-py"), "nothing to build")


@pytest.mark.parametrize("tag", ["Bad Tag", "UPPER", "x;rm", "../up", "a..b", "-rf", "my-py:", "my-py:-x"])
def test_build_with_a_bad_tag_returns_2(run_cli: RunCli, docker: Any, tag: str) -> None:
    result = run_cli("build", "--base", "python", f"--tag={tag}", "--install", "six")
    assert_usage_error(result, f"not a valid image name: {tag!r}")
    assert len(docker.calls) == 0


@pytest.mark.parametrize("tag", ["my-py", "my-py:v1", "team/my-py:2025.03_1", "registry.example/x/y:latest"])
def test_build_accepts_good_tags_up_to_the_engine(run_cli: RunCli, docker: Any, tag: str) -> None:
    """A good tag passes validation: the next step is the engine, whose daemon is down here."""
    register_unreachable(docker, VERSION)
    status, _, err = run_cli("build", "--base", "python", "--tag", tag, "--install", "six")
    assert status == 3, err
    assert "Cannot connect to the Docker daemon" in err
    assert docker.call_count(VERSION) == 1


@pytest.mark.parametrize("spec", ["--index-url=https://x", "-e .", "six;id", "$(id)", "six six", "pkg @ https://x"])
def test_build_with_a_bad_spec_returns_2_naming_it(run_cli: RunCli, docker: Any, spec: str) -> None:
    result = run_cli("build", "--base", "python", "--tag", "my-py", f"--install={spec}")
    assert_usage_error(result, f"refusing package spec {spec!r}")
    assert len(docker.calls) == 0


def test_build_with_a_bad_requirements_line_returns_2(run_cli: RunCli, docker: Any, isolated: Path) -> None:
    (isolated / "requirements.txt").write_text("six\n--extra-index-url https://evil.example\n")
    result = run_cli("build", "--base", "python", "--tag", "my-py", "--requirements", "requirements.txt")
    assert_usage_error(result, "'--extra-index-url https://evil.example'")
    assert len(docker.calls) == 0


def test_build_with_requirements_for_bash_returns_2(run_cli: RunCli, docker: Any, isolated: Path) -> None:
    (isolated / "apt.txt").write_text("jq\n")
    result = run_cli("build", "--base", "bash", "--tag", "my-bash", "--requirements", "apt.txt")
    assert_usage_error(result, "--requirements is for python")
    assert len(docker.calls) == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["build", "--tag", "x", "--install", "six"], "the following arguments are required: --base"),
        (["build", "--base", "python", "--install", "six"], "the following arguments are required: --tag"),
        (["build", "--base", "ruby", "--tag", "x"], "invalid choice: 'ruby'"),
        (["build", "--base", "python", "--tag", "x", "--install", "--index-url=x"], "expected one argument"),
    ],
)
def test_build_argparse_errors_return_2(run_cli: RunCli, docker: Any, argv: list[str], fragment: str) -> None:
    status, out, err = run_cli(*argv)
    assert (status, out) == (2, "")
    assert fragment in err
    assert len(docker.calls) == 0


# ---- run --install -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-r", "bash", "--install", "jq", "-e", "jq --version"],
        ["run", "--cmd", "jq --version", "--install", "jq"],
        ["run", "-r", "bash", "--install", "$(id)", "-e", "true"],
    ],
    ids=["-r-bash", "--cmd", "bad-spec-too"],
)
def test_run_install_with_bash_returns_2_and_says_to_build_an_image(
    run_cli: RunCli, docker: Any, argv: list[str]
) -> None:
    result = run_cli(*argv)
    assert_usage_error(result, "bash has no run-time installs", "build a custom image", "isol8 build --base bash")
    assert len(docker.calls) == 0


@pytest.mark.parametrize(
    ("runtime", "spec"),
    [
        ("python", "--index-url=x"),
        ("python", "-e ."),
        ("python", "six;touch /tmp/pwned"),
        ("python", "six`id`"),
        ("python", "six\nnumpy"),
        ("python", "pkg @ https://x"),
        ("node", "Lodash"),
        ("node", "lodash@notarange"),
        ("deno", "zod"),
    ],
)
def test_run_install_with_a_bad_spec_returns_2_naming_it(run_cli: RunCli, docker: Any, runtime: str, spec: str) -> None:
    result = run_cli("run", "-r", runtime, f"--install={spec}", "-e", "1")
    assert_usage_error(result, f"isol8: error: refusing package spec {spec!r}")
    assert len(docker.calls) == 0


def test_run_install_with_a_bad_spec_among_good_ones_returns_2(run_cli: RunCli, docker: Any) -> None:
    result = run_cli("run", "--install", "six,numpy", "--install=colorama,--index-url=x", "-e", "1")
    assert_usage_error(result, "refusing package spec '--index-url=x'")
    assert len(docker.calls) == 0


def test_run_install_with_a_dash_value_as_its_own_argument_is_an_argparse_error(run_cli: RunCli, docker: Any) -> None:
    status, out, err = run_cli("run", "--install", "--index-url=x", "-e", "1")
    assert (status, out) == (2, "")
    assert "argument --install: expected one argument" in err
    assert len(docker.calls) == 0


@pytest.mark.parametrize(
    "argv",
    [["run", "-r", "bash", "--install", "jq", "-e", "true"], ["run", "--install=--index-url=x", "-e", "1"]],
    ids=["bash", "bad-spec"],
)
def test_run_install_usage_errors_do_not_need_an_engine(
    run_cli: RunCli, fp: Any, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setattr(isol8.backends.engine.detect, "_on_path", lambda name: False)
    assert_usage_error(run_cli(*argv))
    assert len(fp.calls) == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--install-strategy", "runtime", "-e", "1"], "--install-strategy needs --install"),
        (
            ["run", "--host", "http://127.0.0.1:1", "--install", "six", "--install-strategy", "runtime", "-e", "1"],
            "--install-strategy is the server's choice",
        ),
        (["run", "-r", "bash", "--install", "jq", "--install-strategy", "runtime", "-e", "1"], "no run-time installs"),
    ],
    ids=["no-install", "host", "bash"],
)
def test_run_install_strategy_usage_errors(run_cli: RunCli, docker: Any, argv: list[str], fragment: str) -> None:
    assert_usage_error(run_cli(*argv), fragment)
    assert len(docker.calls) == 0


def test_run_install_strategy_takes_image_or_runtime_only(run_cli: RunCli, docker: Any) -> None:
    status, out, err = run_cli("run", "--install", "six", "--install-strategy", "lazy", "-e", "1")
    assert (status, out) == (2, "")
    assert "invalid choice: 'lazy' (choose from 'image', 'runtime')" in err


def test_the_config_chooses_the_strategy_and_image_is_the_default(isolated: Path, tmp_path: Path) -> None:
    from isol8.config import load_config

    (isolated / "isol8.config.json").write_text('{"packages": {"strategy": "runtime"}}')
    assert load_config().packages.strategy == "runtime"
    assert load_config(cwd=tmp_path).packages.strategy == "image"


# ---- resolve -------------------------------------------------------------------------------------


def test_resolve_without_a_runtime_returns_2(run_cli: RunCli, docker: Any) -> None:
    status, out, err = run_cli("resolve", "--install", "six")
    assert (status, out) == (2, "")
    assert "the following arguments are required: -r/--runtime" in err
    assert len(docker.calls) == 0


def test_resolve_with_a_bad_spec_returns_2(run_cli: RunCli, docker: Any) -> None:
    assert_usage_error(run_cli("resolve", "-r", "python", "--install=$(id)"), "refusing package spec '$(id)'")
    assert len(docker.calls) == 0


def _inspect(n: int, tag: str, deps: str, resolved: str) -> dict[str, Any]:
    labels = {
        "org.isol8.managed": "true",
        "org.isol8.runtime": "python",
        "org.isol8.dependencies": deps,
        "org.isol8.deps.hash": f"{n:064x}",
        "org.isol8.resolved": resolved,
    }
    return {
        "Id": f"sha256:{n:064x}",
        "RepoTags": [tag],
        "Created": f"2025-03-0{n}T10:00:00.000000000Z",
        "Size": 123_000_000,
        "Config": {"Labels": labels},
    }


def test_resolve_json_over_a_faked_engine(run_cli: RunCli, docker: Any) -> None:
    objs = [
        _inspect(1, "py-six:v1", "six", "six==1.17.0"),
        _inspect(2, "py-big:v1", "colorama,numpy,six", "colorama==0.4.6,numpy==2.1.3,six==1.17.0"),
    ]
    docker.register(LIST_PYTHON, stdout="".join(f"sha256:{n:064x}\n" for n in (1, 2)))
    docker.register(["docker", "image", "inspect", f"{1:064x}", f"{2:064x}"], stdout=json.dumps(objs))

    status, out, err = run_cli("resolve", "-r", "python", "--install", "six,Colorama", "--install", "attrs", "--json")

    assert (status, err) == (0, "")
    assert json.loads(out) == {
        "runtime": "python",
        "image": "py-big:v1",
        "match": "partial",
        "install": ["attrs"],
        "reason": "py-big:v1 has colorama, six; attrs still to install",
    }
    assert len(docker.calls) == 2


def test_resolve_text_for_the_base_image(run_cli: RunCli, docker: Any) -> None:
    docker.register(LIST_PYTHON, stdout="")

    status, out, err = run_cli("resolve", "-r", "python", "--install", "six")

    assert (status, err) == (0, "")
    assert out == "base: isol8:python\n  no image has any of six\n  to install at run time: six\n"


# ---- images --------------------------------------------------------------------------------------


def test_images_json_lists_labelled_images_in_two_calls(run_cli: RunCli, docker: Any) -> None:
    listing = [
        "docker",
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        "label=org.isol8.deps.hash",
        "--filter",
        "label=org.isol8.runtime=python",
    ]
    objs = [_inspect(2, "zz-last:v1", "six", "six==1.17.0"), _inspect(1, "aa-first:v1", "attrs", "attrs==25.1.0")]
    docker.register(listing, stdout=f"sha256:{2:064x}\nsha256:{1:064x}\n")
    docker.register(["docker", "image", "inspect", f"{2:064x}", f"{1:064x}"], stdout=json.dumps(objs))

    status, out, err = run_cli("images", "-r", "python", "--json")

    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert [r["tag"] for r in rows] == ["aa-first:v1", "zz-last:v1"]
    assert rows[1]["packages"] == ["six"]
    assert rows[1]["resolved"] == ["six==1.17.0"]
    assert rows[1]["runtime"] == "python"
    assert len(docker.calls) == 2


def test_images_with_none_found(run_cli: RunCli, docker: Any) -> None:
    docker.register(["docker", "images", "-q", "--no-trunc", "--filter", "label=org.isol8.deps.hash"], stdout="")

    status, out, err = run_cli("images")

    assert (status, out, err) == (0, "no custom images (isol8 build creates them)\n", "")
    assert len(docker.calls) == 1
