"""The ecosystem plugins: the Runtime -> plugin lookup, and each plugin's surface (pure, no engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from isol8 import ecosystems
from isol8.config import PackageSettings
from isol8.ecosystems import Installer, apt, deno, npm, pip
from isol8.errors import UsageError
from isol8.runtimes import RUNTIMES, Runtime

ROOT = Path(__file__).resolve().parents[2]
CTX = "/tmp/isol8-build"
NO_REGISTRY = PackageSettings()
REGISTRIES = PackageSettings(pip_index_url="https://pypi.example/simple", npm_registry="https://npm.example/")
PROTOCOL = (
    "RUN_TIME_REFUSAL",
    "parse",
    "split",
    "matches",
    "read_requirements",
    "context_files",
    "install_lines",
    "runtime_installer",
    "version_query",
)

# ---- the lookup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "plugin"), [("python", pip), ("node", npm), ("bun", npm), ("deno", deno), ("bash", apt)]
)
def test_a_runtime_finds_the_plugin_its_ecosystem_names(runtime: str, plugin: ModuleType) -> None:
    assert ecosystems.of(RUNTIMES[runtime]) is plugin


def test_every_plugin_module_is_known_and_has_the_whole_protocol() -> None:
    modules = {p.stem for p in (ROOT / "isol8" / "ecosystems").glob("*.py")} - {"__init__"}
    assert set(ecosystems.PLUGINS) == modules
    for name in ecosystems.PLUGINS:
        plugin = ecosystems.of(Runtime("x", (".x",), ("x",), name))
        assert [member for member in PROTOCOL if not hasattr(plugin, member)] == [], name


def test_a_runtime_without_an_ecosystem_of_its_own_is_pip() -> None:
    assert ecosystems.of(Runtime("x", (".x",), ("x",))) is pip


def test_an_unknown_ecosystem_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        ecosystems.of(Runtime("ruby", (".rb",), ("ruby",), "gem"))
    assert str(info.value) == "runtime 'ruby' names no known package ecosystem: 'gem'"


LAZY_PROBE = """\
import json, sys
from isol8 import runtimes
from isol8.core.provision import check_install
for name in ("python", "node", "deno"):
    check_install(runtimes.get(name), ["six,lodash@4", "npm:zod@3"])
print(json.dumps(sorted(n for n in sys.modules if n.partition(".")[0] in ("packaging", "nodesemver")
                 or n in ("isol8.ecosystems.apt", "isol8.core.custom_images", "isol8.core.discovery"))))
"""


def test_checking_install_values_imports_neither_packaging_nor_nodesemver(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ISOL8_")}, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# ---- run-time installs ---------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["python", "node", "bun", "deno"])
def test_run_time_installs_are_possible_except_for_apt(runtime: str) -> None:
    assert ecosystems.of(RUNTIMES[runtime]).RUN_TIME_REFUSAL is None


def test_apt_refuses_run_time_installs_and_says_how_to_build_an_image() -> None:
    assert apt.RUN_TIME_REFUSAL == (
        "bash has no run-time installs (its root filesystem is read-only); build a custom image: "
        "isol8 build --base bash --tag my-bash --install jq, then isol8 run --image my-bash ..."
    )


# ---- parse, split, matches -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "value", "parts"),
    [
        (pip, "a[x,y]>=1,<2,b", ["a[x,y]>=1,<2", "b"]),
        (pip, "a,,b,", ["a", "b"]),
        (pip, "a>=1, <2", ["a>=1, <2"]),
        (npm, "a@^1,,@s/b", ["a@^1", "@s/b"]),
        (npm, "a@>=1,<2", ["a@>=1", "<2"]),  # npm has no comma inside a range
        (deno, "npm:a@3,jsr:@s/b", ["npm:a@3", "jsr:@s/b"]),
        (apt, "jq,,curl=7", ["jq", "curl=7"]),
    ],
)
def test_split(plugin: ModuleType, value: str, parts: list[str]) -> None:
    assert plugin.split(value) == parts


@pytest.mark.parametrize(
    ("plugin", "spec", "expected"),
    [
        (pip, "Foo_Bar[Z,a]>=1,<2", ecosystems.Spec("foo-bar", "foo-bar[a,z]<2,>=1", "<2,>=1")),
        (npm, "@s/a@^1", ecosystems.Spec("@s/a", "@s/a@^1", "^1")),
        (npm, "a@next", ecosystems.Spec("a", "a", "")),
        (deno, "npm:a@3", ecosystems.Spec("npm:a", "npm:a@3", "3")),
        (deno, "jsr:@s/b@^1", ecosystems.Spec("jsr:@s/b", "jsr:@s/b@^1", "^1")),
        (apt, "jq=1.6-2", ecosystems.Spec("jq", "jq=1.6-2", "==1.6-2")),
    ],
)
def test_parse(plugin: ModuleType, spec: str, expected: ecosystems.Spec) -> None:
    assert plugin.parse(spec) == expected


@pytest.mark.parametrize(
    ("plugin", "constraint", "version", "expected"),
    [
        (pip, ">=1,<2", "1.5", True),
        (pip, ">=1,<2", "2.0", False),
        (pip, "==1.0", "not-a-version", False),
        (npm, "^1", "1.9.0", True),
        (npm, "^1", "2.0.0", False),
        (npm, "^1", "garbage", False),
        (deno, "3", "3.23.8", True),
        (deno, "3", "4.0.0", False),
        (apt, "==1.6-2", "1.6-2", True),
        (apt, "==1.6-2", "1.6-3", False),
    ],
)
def test_matches(plugin: ModuleType, constraint: str, version: str, expected: bool) -> None:
    assert plugin.matches(constraint, version) is expected


# ---- the build-time install: context files -------------------------------------------------------

PACKAGE_JSON = '{"name": "isol8-image", "private": true, "dependencies": '


def specs(runtime: str, *values: str) -> tuple[ecosystems.Spec, ...]:
    return ecosystems.parse_specs(RUNTIMES[runtime], values)


@pytest.mark.parametrize(
    ("runtime", "new", "inherited", "registry", "files"),
    [
        ("python", ["b>=1", "a"], ["six"], NO_REGISTRY, {"requirements.txt": "a\nb>=1\n"}),
        (
            "python",
            ["a"],
            [],
            REGISTRIES,
            {"requirements.txt": "a\n", "pip.conf": "[global]\nindex-url = https://pypi.example/simple\n"},
        ),
        (
            "node",
            ["zod@3"],
            ["lodash@4.17.21"],
            NO_REGISTRY,
            {"package.json": PACKAGE_JSON + '{"lodash": "4.17.21", "zod": "3"}}'},
        ),
        (
            "bun",
            ["zod"],
            [],
            REGISTRIES,
            {
                "package.json": PACKAGE_JSON + '{"zod": "*"}}',
                "npmrc": "registry=https://npm.example/\n",
            },
        ),
        (
            "deno",
            ["npm:zod@3"],
            ["jsr:@std/path"],
            NO_REGISTRY,
            {"deps.ts": 'import "jsr:@std/path";\nimport "npm:zod@3";\n'},
        ),
        (
            "deno",
            ["npm:zod@3"],
            [],
            REGISTRIES,
            {"deps.ts": 'import "npm:zod@3";\n', "npmrc": "registry=https://npm.example/\n"},
        ),
        ("bash", ["jq=1.6-2", "curl"], ["bc"], REGISTRIES, {"apt.txt": "curl\njq=1.6-2\n"}),
    ],
)
def test_context_files(
    runtime: str, new: list[str], inherited: list[str], registry: PackageSettings, files: dict[str, str]
) -> None:
    plugin = ecosystems.of(RUNTIMES[runtime])
    assert plugin.context_files(specs(runtime, *new), specs(runtime, *inherited), registry) == files


# ---- the build-time install: Dockerfile lines ----------------------------------------------------

PIP_INSTALL = (
    "python3 -m pip install --no-cache-dir --break-system-packages --disable-pip-version-check "
    f"--root-user-action=ignore -r {CTX}/requirements.txt"
)
NPM_INSTALL = "npm install --no-audit --no-fund --omit=dev --loglevel=error"
NODE_LINK = "ln -sfn /opt/isol8/node_modules /node_modules && chmod -R a+rX /opt/isol8"
DENO_CACHE = "DENO_DIR=/opt/isol8/deno deno cache /opt/isol8/deps.ts && chmod -R a+rX /opt/isol8"
DENO_COPY = f"RUN mkdir -p /opt/isol8/deno && cp {CTX}/deps.ts /opt/isol8/deps.ts"
APT_INSTALL = (
    f"RUN apt-get update && xargs -a {CTX}/apt.txt apt-get install -y --no-install-recommends"
    " && apt-get clean && rm -rf /var/lib/apt/lists/*"
)
NPMRC = f" && cp {CTX}/npmrc /opt/isol8/.npmrc"
NODE_COPY = f"RUN mkdir -p /opt/isol8 && cp {CTX}/package.json /opt/isol8/"


@pytest.mark.parametrize(
    ("runtime", "registry", "ca", "lines"),
    [
        ("python", NO_REGISTRY, False, [f"RUN {PIP_INSTALL}"]),
        ("python", REGISTRIES, True, [f"RUN PIP_CERT={CTX}/ca.pem PIP_CONFIG_FILE={CTX}/pip.conf {PIP_INSTALL}"]),
        (
            "node",
            NO_REGISTRY,
            False,
            [f"{NODE_COPY} && cd /opt/isol8 && {NPM_INSTALL} && {NODE_LINK}"],
        ),
        (
            "node",
            REGISTRIES,
            True,
            [f"{NODE_COPY}{NPMRC} && cd /opt/isol8 && NODE_EXTRA_CA_CERTS={CTX}/ca.pem {NPM_INSTALL} && {NODE_LINK}"],
        ),
        (
            "bun",
            NO_REGISTRY,
            False,
            [f"{NODE_COPY} && cd /opt/isol8 && bun install --production && {NODE_LINK}"],
        ),
        (
            "bun",
            REGISTRIES,
            True,
            [
                f"{NODE_COPY}{NPMRC} && cd /opt/isol8"
                f" && NODE_EXTRA_CA_CERTS={CTX}/ca.pem bun install --production && {NODE_LINK}"
            ],
        ),
        ("deno", NO_REGISTRY, False, [f"{DENO_COPY} && {DENO_CACHE}", "ENV DENO_DIR=/opt/isol8/deno"]),
        (
            "deno",
            REGISTRIES,
            True,
            [
                f"{DENO_COPY} && DENO_CERT={CTX}/ca.pem NPM_CONFIG_USERCONFIG={CTX}/npmrc {DENO_CACHE}",
                "ENV DENO_DIR=/opt/isol8/deno",
            ],
        ),
        ("bash", NO_REGISTRY, False, [APT_INSTALL]),
        ("bash", REGISTRIES, True, [APT_INSTALL]),
    ],
)
def test_install_lines(runtime: str, registry: PackageSettings, ca: bool, lines: list[str]) -> None:
    rt = RUNTIMES[runtime]
    assert ecosystems.of(rt).install_lines(rt, registry, ca) == lines


PIP_USER = (
    "PYTHONUSERBASE=/sandbox/.local python3 -m pip install --user --only-binary=:all: --no-cache-dir "
    f"--disable-pip-version-check --no-warn-script-location -r {CTX}/requirements.txt"
)
DENO_SEED = (
    'mkdir -p .deno && { [ "${DENO_DIR:-/sandbox/.deno}" = /sandbox/.deno ] || [ ! -d "$DENO_DIR" ] || '
    'cp -a "$DENO_DIR/." .deno/; } && '
)
DENO_RUNTIME_CACHE = f"DENO_DIR=/sandbox/.deno deno cache {CTX}/deps.ts"
DENO_ENV = {"DENO_DIR": "/sandbox/.deno"}
NO_GIT = "npm_config_git=/nonexistent/git"  # git dependencies fail: their prepare script would run
STAGE = "mkdir -p /sandbox/.isol8-install && cd /sandbox/.isol8-install"
MOVE = "mv node_modules /sandbox/node_modules"
COPY = f"cp {CTX}/package.json ."


@pytest.mark.parametrize(
    ("runtime", "registry", "ca", "expected"),
    [
        ("python", NO_REGISTRY, False, Installer(".local", PIP_USER, {"PYTHONUSERBASE": "/sandbox/.local"})),
        (
            "python",
            REGISTRIES,
            True,
            Installer(
                ".local",
                f"PIP_CERT={CTX}/ca.pem PIP_CONFIG_FILE={CTX}/pip.conf {PIP_USER}",
                {"PYTHONUSERBASE": "/sandbox/.local"},
            ),
        ),
        (
            "node",
            NO_REGISTRY,
            False,
            Installer("node_modules", f"{STAGE} && {COPY} && {NO_GIT} {NPM_INSTALL} --ignore-scripts && {MOVE}"),
        ),
        (
            "node",
            REGISTRIES,
            True,
            Installer(
                "node_modules",
                f"{STAGE} && cp {CTX}/package.json . && cp {CTX}/npmrc .npmrc"
                f" && {NO_GIT} NODE_EXTRA_CA_CERTS={CTX}/ca.pem {NPM_INSTALL} --ignore-scripts && {MOVE}",
            ),
        ),
        (
            "bun",
            NO_REGISTRY,
            False,
            Installer(
                "node_modules", f"{STAGE} && {COPY} && {NO_GIT} bun install --production --ignore-scripts && {MOVE}"
            ),
        ),
        ("deno", NO_REGISTRY, False, Installer(".deno", DENO_SEED + DENO_RUNTIME_CACHE, DENO_ENV)),
        (
            "deno",
            REGISTRIES,
            True,
            Installer(
                ".deno",
                f"{DENO_SEED}DENO_CERT={CTX}/ca.pem NPM_CONFIG_USERCONFIG={CTX}/npmrc {DENO_RUNTIME_CACHE}",
                {"DENO_DIR": "/sandbox/.deno"},
            ),
        ),
    ],
)
def test_runtime_installer(runtime: str, registry: PackageSettings, ca: bool, expected: Installer) -> None:
    """Fixed commands: the specs and the registry reach them only through the context files."""
    rt = RUNTIMES[runtime]
    got = ecosystems.of(rt).runtime_installer(rt, registry, ca)
    assert (got.directory, got.command, dict(got.env)) == (expected.directory, expected.command, dict(expected.env))
    assert "example" not in got.command


def test_the_images_find_what_run_time_installs_put_under_sandbox() -> None:
    """The python and deno Dockerfiles name the folders their installers fill (node_modules needs no name)."""
    wanted = {"python": "PYTHONUSERBASE=/sandbox/.local", "deno": "DENO_DIR=/sandbox/.deno"}
    for runtime, needle in wanted.items():
        assert needle in (ROOT / "dockerfiles" / runtime / "Dockerfile").read_text()


def test_an_npm_runtime_other_than_bun_installs_with_npm_and_queries_with_node() -> None:
    other = Runtime("other-js", (".x",), ("other-js",), "npm")
    assert NPM_INSTALL in npm.install_lines(other, NO_REGISTRY, False)[0]
    assert npm.version_query(other, ["a"])[:2] == ["node", "-e"]


# ---- reading installed versions back -------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "head", "needle", "tail"),
    [
        ("python", ["python3", "-c"], "importlib.metadata", ["a", "b"]),
        ("node", ["node", "-e"], "'/opt/isol8/node_modules/'", ["a", "b"]),
        ("bun", ["bun", "-e"], "'/opt/isol8/node_modules/'", ["a", "b"]),
        ("deno", ["bash", "-c"], "ls -1 /opt/isol8/deno/npm/*/", ["isol8", "a", "b"]),
        ("bash", ["bash", "-c"], "dpkg-query -W -f '${Version}'", ["isol8", "a", "b"]),
    ],
)
def test_version_query(runtime: str, head: list[str], needle: str, tail: list[str]) -> None:
    rt = RUNTIMES[runtime]
    argv = ecosystems.of(rt).version_query(rt, ["a", "b"])
    assert (argv[:2], argv[-len(tail) :], len(argv)) == (head, tail, 3 + len(tail))
    assert needle in argv[2]


# ---- requirements files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "text", "texts"),
    [
        ("python", "six  # why\n\nnumpy>=1,<2\n", ["numpy<2,>=1", "six"]),
        ("node", '{"dependencies": {"zod": "^3", "a": "*"}}', ["a", "zod@^3"]),
        ("bun", '{"dependencies": {"zod": ""}}', ["zod"]),
    ],
)
def test_read_requirements_from_text(runtime: str, text: str, texts: list[str]) -> None:
    rt = RUNTIMES[runtime]
    assert [s.text for s in ecosystems.of(rt).read_requirements(rt, "f", text)] == texts


@pytest.mark.parametrize("runtime", ["deno", "bash"])
def test_read_requirements_is_refused_by_deno_and_apt(runtime: str) -> None:
    rt = RUNTIMES[runtime]
    with pytest.raises(UsageError) as info:
        ecosystems.of(rt).read_requirements(rt, "f", "jq\n")
    assert (
        str(info.value) == f"--requirements is for python (requirements.txt) and node/bun (package.json), not {runtime}"
    )


# ---- registry_probe (isol8 doctor --network) ------------------------------------------------------


def test_registry_probes_are_fixed_commands_aimed_by_variables_only() -> None:
    from isol8 import ecosystems
    from isol8.config import PackageSettings
    from isol8.ecosystems import Probe
    from isol8.runtimes import RUNTIMES

    aimed = PackageSettings(pip_index_url="https://pypi.example/simple; rm -rf /", npm_registry="https://npm.example/")
    probes = {rt: ecosystems.of(RUNTIMES[rt]).registry_probe(RUNTIMES[rt], aimed, "/sandbox/ca.pem") for rt in RUNTIMES}
    assert probes == {
        "python": Probe(
            "package index",
            "python3 -m pip index versions six",
            {"PIP_CERT": "/sandbox/ca.pem", "PIP_INDEX_URL": "https://pypi.example/simple; rm -rf /"},
        ),
        "node": Probe(
            "npm registry",
            "npm view is-number version",
            {"NODE_EXTRA_CA_CERTS": "/sandbox/ca.pem", "npm_config_registry": "https://npm.example/"},
        ),
        "bun": None,
        "deno": None,
        "bash": None,
    }
    plain = ecosystems.of(RUNTIMES["python"]).registry_probe(RUNTIMES["python"], PackageSettings(), None)
    assert plain == Probe("package index", "python3 -m pip index versions six", {})
