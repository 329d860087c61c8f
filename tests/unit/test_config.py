"""isol8.config: finding the files, layering them with their origins, validation errors, the typed sections."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from isol8.config import DEFAULTS, Config, PrebuiltImage, load_config, parse_config_text
from isol8.config.layers import BUILT_IN, Found, Layer, env_layers, find_files, leaves, merge, origin_of
from isol8.errors import ConfigError
from isol8.status import ExitStatus

# ---- finding the files ---------------------------------------------------------------------------

LOCAL = ("isol8.config.json", "isol8.config.yaml", "isol8.config.yml")
HOME = ("config.json", "config.yaml", "config.yml")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    return cwd, home


def touch(path: Path, text: str = "{}\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def files(cwd: Path, home: Path, env: dict[str, str], explicit: str | None = None, **kw: bool) -> tuple[str, ...]:
    return find_files(cwd, home, env, explicit, **kw).files


def test_nothing_found(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    assert find_files(cwd, home, {}) == Found((), ())


def test_every_level_is_found_least_specific_first(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, home = dirs
    user = touch(home / ".isol8" / "config.json")
    project = touch(cwd / "isol8.config.yml")
    explicit = touch(tmp_path / "explicit.yaml")
    assert files(cwd, home, {}, str(explicit)) == (str(user), str(project), str(explicit))


def test_explicit_beats_isol8_config(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, home = dirs
    explicit = touch(tmp_path / "explicit.yaml")
    from_env = touch(tmp_path / "env.json")
    assert files(cwd, home, {"ISOL8_CONFIG": str(from_env)}, str(explicit)) == (str(explicit),)
    assert files(cwd, home, {"ISOL8_CONFIG": str(from_env)}) == (str(from_env),)


def test_the_project_file_is_the_nearest_in_the_working_directory_or_its_parents(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    deep = cwd / "a" / "b"
    deep.mkdir(parents=True)
    outer = touch(cwd / "isol8.config.json")
    assert files(deep, home, {}) == (str(outer),)
    inner = touch(cwd / "a" / "isol8.config.yaml")
    assert files(deep, home, {}) == (str(inner),)  # only the nearest: project files do not stack


def test_no_user_config_skips_only_the_user_file(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    touch(home / ".isol8" / "config.json")
    project = touch(cwd / "isol8.config.json")
    assert files(cwd, home, {}, user=False) == (str(project),)


ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="making a file another user's needs root")
OTHER = 4242  # a uid that is neither yours nor root's


def owned_by_other(path: Path, *, link: bool = False) -> None:
    (os.lchown if link else os.chown)(path, OTHER, OTHER)


@needs_root
def test_a_project_file_owned_by_another_user_is_ignored_and_the_walk_goes_on(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    outer = touch(cwd / "isol8.config.json", '{"maxConcurrent": 3}')
    planted = touch(cwd / "a" / "isol8.config.json", '{"security": {"seccompProfile": "/tmp/allow-all.json"}}')
    owned_by_other(planted)
    (cwd / "a" / "b").mkdir()
    found = find_files(cwd / "a" / "b", home, {})
    assert found.files == (str(outer),)
    assert found.ignored == (f"{planted}: owned by uid {OTHER}, not by you (uid 0)",)
    assert found.texts == {str(outer): '{"maxConcurrent": 3}'}


@needs_root
def test_a_user_file_in_someone_elses_home_is_ignored(dirs: tuple[Path, Path]) -> None:
    """`sudo -E isol8 ...` keeps HOME: root must not take the invoking user's word for its sandbox."""
    cwd, home = dirs
    theirs = touch(home / ".isol8" / "config.json", '{"security": {"seccompProfile": "/tmp/allow-all.json"}}')
    owned_by_other(theirs)
    found = find_files(cwd, home, {})
    assert (found.files, found.ignored) == ((), (f"{theirs}: owned by uid {OTHER}, not by you (uid 0)",))


@needs_root
def test_a_planted_symlink_to_a_root_owned_file_is_ignored(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, home = dirs
    root_owned = touch(tmp_path / "roots.json", '{"defaults": {"network": "host"}}')
    link = cwd / "isol8.config.json"
    link.symlink_to(root_owned)
    owned_by_other(link, link=True)
    found = find_files(cwd, home, {})
    assert found.files == ()
    assert found.ignored == (f"{link}: a symbolic link owned by uid {OTHER}, not by you (uid 0)",)


def test_your_own_symlink_is_followed(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, home = dirs
    shared = touch(tmp_path / "shared.json", '{"maxConcurrent": 3}')
    (cwd / "isol8.config.json").symlink_to(shared)
    found = find_files(cwd, home, {})
    assert (found.files, found.ignored) == ((str(cwd / "isol8.config.json"),), ())


@needs_root
def test_a_folder_others_can_change_is_not_trusted_unless_sticky(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    mine = touch(cwd / "isol8.config.json", '{"maxConcurrent": 3}')
    cwd.chmod(0o777)
    found = find_files(cwd, home, {})
    assert (found.files, found.ignored) == ((), (f"{mine}: its folder can be changed by other users",))
    cwd.chmod(0o1777)  # as /tmp: only a file's owner can replace it
    assert find_files(cwd, home, {}).files == (str(mine),)
    owned_by_other(cwd)
    assert find_files(cwd, home, {}).ignored == (f"{mine}: its folder can be changed by other users",)


@needs_root
def test_a_hard_link_to_someone_elses_file_is_ignored(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, home = dirs
    secret = touch(tmp_path / "shadow", "root:x:0:0\n")
    os.chown(secret, 0, 0)
    os.link(secret, cwd / "isol8.config.yaml")
    os.chown(cwd / "isol8.config.yaml", 0, 0)
    os.chown(cwd, OTHER, OTHER)  # ...in a folder of another user's: refused for the folder already
    assert find_files(cwd, home, {}).ignored == (
        f"{cwd / 'isol8.config.yaml'}: its folder can be changed by other users",
    )


def test_a_file_gone_between_finding_and_reading_is_skipped(dirs: tuple[Path, Path]) -> None:
    from isol8.config.layers import _read_trusted

    cwd, _ = dirs
    assert _read_trusted(str(cwd / "isol8.config.json"), os.getuid()) == (
        None,
        "cannot be checked: No such file or directory",
    )


def test_a_fifo_in_the_project_position_is_not_read(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    os.mkfifo(cwd / "isol8.config.json")
    assert find_files(cwd, home, {}).files == ()  # isfile() is false for it: never opened


def test_a_removed_working_directory_has_no_project_file(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, home = dirs
    gone = cwd / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert load_config(None, home=home, env={}).sources == ()


def test_relative_paths_in_a_file_are_relative_to_its_folder(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    touch(
        cwd / "isol8.config.json",
        '{"security": {"seccompProfile": "profiles/strict.json"}, "packages": {"caBundle": "ca.pem"}}',
    )
    deep = cwd / "a" / "b"
    deep.mkdir(parents=True)
    config = load_config(None, cwd=deep, home=home, env={})
    assert config.backend.seccomp_profile == str(cwd / "profiles" / "strict.json")
    assert config.packages.ca_bundle == str(cwd / "ca.pem")
    touch(cwd / "isol8.config.json", '{"packages": {"caBundle": "none"}}')
    assert load_config(None, cwd=deep, home=home, env={}).packages.ca_bundle == "none"


def test_a_file_named_twice_counts_once_at_its_highest_level(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    user = touch(home / ".isol8" / "config.json")
    project = touch(cwd / "isol8.config.json")
    assert files(cwd, home, {}, str(user)) == (str(project), str(user))
    assert files(cwd, home, {}, str(project)) == (str(user), str(project))


@pytest.mark.parametrize("present", [LOCAL[i:] for i in range(len(LOCAL))])
def test_project_names_in_order_json_yaml_yml(dirs: tuple[Path, Path], present: tuple[str, ...]) -> None:
    cwd, home = dirs
    for name in present:
        touch(cwd / name)
    assert files(cwd, home, {}) == (str(cwd / present[0]),)


@pytest.mark.parametrize("present", [HOME[i:] for i in range(len(HOME))])
def test_user_names_in_order_json_yaml_yml(dirs: tuple[Path, Path], present: tuple[str, ...]) -> None:
    cwd, home = dirs
    for name in present:
        touch(home / ".isol8" / name)
    assert files(cwd, home, {}) == (str(home / ".isol8" / present[0]),)


def test_other_names_and_folders_do_not_count(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    (cwd / "isol8.config.json").mkdir()  # a folder is not a config file
    touch(cwd / "isol8.json")
    touch(cwd / "config.json")  # the user names do not count in the working directory
    touch(home / ".isol8" / "isol8.config.json")
    assert files(cwd, home, {}) == ()


def test_the_env_it_is_given_not_os_environ(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, home = dirs
    monkeypatch.setenv("ISOL8_CONFIG", str(touch(tmp_path / "process-env.json")))
    assert files(cwd, home, {}) == ()


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_explicit_or_isol8_config_is_not_set(dirs: tuple[Path, Path], empty: str | None) -> None:
    cwd, home = dirs
    local = touch(cwd / "isol8.config.json")
    assert files(cwd, home, {"ISOL8_CONFIG": ""}, empty) == (str(local),)


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_a_missing_chosen_file_is_an_error(dirs: tuple[Path, Path], tmp_path: Path, how: str) -> None:
    cwd, home = dirs
    missing = tmp_path / "missing.yaml"
    touch(cwd / "isol8.config.json")  # no silent fallback to the search path
    env = {"ISOL8_CONFIG": str(missing)} if how == "env" else {}
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        find_files(cwd, home, env, str(missing) if how == "explicit" else None)


# ---- parsing and validation ---------------------------------------------------------------------


def load_file(path: Path, text: str) -> Config:
    touch(path, textwrap.dedent(text))
    return load_config(str(path), cwd=path.parent, home=path.parent, env={})


def names_key(message: str, key_path: str) -> bool:
    """key_path appears as a whole path, not as part of a longer or shorter one."""
    return re.search(rf"(?<![\w.\[\]]){re.escape(key_path)}(?![\w.\[])", message) is not None


@pytest.mark.parametrize(
    ("text", "key_path", "reason"),
    [
        # unknown keys
        ("engnie: docker\n", "engnie", "unknown key"),
        ("defaults:\n  timeoutMS: 5\n", "defaults.timeoutMS", "unknown key"),
        ("network:\n  allow: [a.com]\n", "network.allow", "unknown key"),
        (
            "prebuiltImages:\n  - tag: t\n    runtime: python\n    setupScrpt: x\n",
            "prebuiltImages[0].setupScrpt",
            "unknown key",
        ),
        # wrong types and values
        ("engine: lxc\n", "engine", "docker, podman"),
        ("debug: maybe\n", "debug", "true or false"),
        ("maxConcurrent: 0\n", "maxConcurrent", "positive"),
        ("maxConcurrent: 2.5\n", "maxConcurrent", "integer"),
        ("defaults: 5\n", "defaults", "mapping"),
        ("defaults:\n  timeoutMs: soon\n", "defaults.timeoutMs", "not a duration"),
        ("defaults:\n  timeoutMs: true\n", "defaults.timeoutMs", "not a duration: True"),
        ("defaults:\n  timeoutMs: -1\n", "defaults.timeoutMs", "out of range"),
        ("defaults:\n  memoryLimit: lots\n", "defaults.memoryLimit", "size"),
        ("defaults:\n  cpuLimit: fast\n", "defaults.cpuLimit", "not a CPU count"),
        ("server:\n  queueTimeoutMs: 0\n", "server.queueTimeoutMs", "out of range"),
        ("prebuiltImages:\n  - tag: x//y\n    runtime: python\n", "prebuiltImages[0].tag", "not a valid image name"),
        ("defaults:\n  network: bridge\n", "defaults.network", "none, host"),
        ("packages:\n  strategy: lazy\n", "packages.strategy", "image, runtime"),
        ("network:\n  whitelist: a.com\n", "network.whitelist", "list"),
        ("network:\n  blacklist: [a.com, 3]\n", "network.blacklist[1]", "string"),
        ("security:\n  seccompProfile: [a]\n", "security.seccompProfile", "string"),
        ("baseImages:\n  ruby: ruby:3\n", "baseImages.ruby", "python"),
        ("baseImages:\n  python: 3\n", "baseImages.python", "string"),
        ("baseImages: [python]\n", "baseImages", "mapping"),
        ("prebuiltImages:\n  tag: t\n", "prebuiltImages", "list"),
        ("prebuiltImages:\n  - tag: t\n    runtime: ruby\n", "prebuiltImages[0].runtime", "python"),
        (
            "prebuiltImages:\n  - tag: a\n    runtime: python\n"
            "  - tag: b\n    runtime: node\n    installPackages: lodash\n",
            "prebuiltImages[1].installPackages",
            "list",
        ),
        (
            "prebuiltImages:\n  - tag: a\n    runtime: node\n    installPackages: [lodash, 7]\n",
            "prebuiltImages[0].installPackages[1]",
            "string",
        ),
        ("prebuiltImages:\n  - runtime: python\n", "prebuiltImages[0]", "tag"),
        ("prebuiltImages:\n  - tag: t\n", "prebuiltImages[0]", "runtime"),
        ("prebuiltImages: [python]\n", "prebuiltImages[0]", "mapping"),
        # kubectl's argv gets these: never a flag ("-..."), never more than one name
        ("backend:\n  namespace: --all-namespaces\n", "backend.namespace", "a Kubernetes name"),
        ("backend:\n  namespace: a.b\n", "backend.namespace", "(a-z, 0-9, '-')"),
        ("backend:\n  namespace: " + "n" * 64 + "\n", "backend.namespace", "a Kubernetes name"),
        ("backend:\n  runtimeClassName: Gvisor\n", "backend.runtimeClassName", "'.'"),
        ("backend:\n  imagePullSecrets: [ok, -x]\n", "backend.imagePullSecrets[1]", "a Kubernetes name"),
    ],
)
def test_invalid_config_names_the_file_and_the_key(tmp_path: Path, text: str, key_path: str, reason: str) -> None:
    path = tmp_path / "isol8.config.yaml"
    with pytest.raises(ConfigError) as caught:
        load_file(path, text)
    message = str(caught.value)
    assert str(path) in message
    assert names_key(message, key_path), message
    assert reason in message
    assert caught.value.exit_status == ExitStatus.USAGE


def test_invalid_json_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "isol8.config.json"
    with pytest.raises(ConfigError) as caught:
        load_file(path, '{"prebuiltImages": [{"tag": "t", "runtime": "python"}, {"tag": "u", "runtime": "go"}]}')
    assert str(path) in str(caught.value)
    assert names_key(str(caught.value), "prebuiltImages[1].runtime"), caught.value


def test_unknown_key_lists_the_known_keys_there(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path / "c.yaml", "security:\n  seccomp: x\n")
    assert "seccompProfile" in str(caught.value)


@pytest.mark.parametrize("text", ["[1, 2]\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    with pytest.raises(ConfigError, match="top level") as caught:
        load_file(path, text)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [("c.yaml", "defaults: [unclosed\n"), ("c.json", '{"engine": "docker"'), ("c.yml", "a: b: c\n")],
)
def test_syntax_error_names_the_file(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    kind = "JSON" if name.endswith(".json") else "YAML"
    with pytest.raises(ConfigError, match=f"not valid {kind}") as caught:
        load_file(path, text)
    assert str(path) in str(caught.value)


def test_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"engine": "\xff"}')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(str(path), cwd=tmp_path, home=tmp_path, env={})


YAML_CONFIG = """\
# a comment
engine: podman
defaults:
  timeoutMs: 5000
  memoryLimit: 256m
network:
  whitelist:
    - packages.example.com
baseImages:
  python: python:3.12-slim
prebuiltImages:
  - tag: isol8-data
    runtime: python
    installPackages: [numpy, pandas]
    setupScript: |
      echo ready
  - tag: isol8-web
    runtime: node
"""

JSON_CONFIG = json.dumps(
    {
        "$schema": "https://example.invalid/isol8.schema.json",
        "engine": "podman",
        "defaults": {"timeoutMs": 5000, "memoryLimit": "256m"},
        "network": {"whitelist": ["packages.example.com"]},
        "baseImages": {"python": "python:3.12-slim"},
        "prebuiltImages": [
            {
                "tag": "isol8-data",
                "runtime": "python",
                "installPackages": ["numpy", "pandas"],
                "setupScript": "echo ready\n",
            },
            {"tag": "isol8-web", "runtime": "node"},
        ],
    },
    indent=2,
)


@pytest.mark.parametrize(("name", "text"), [("c.yaml", YAML_CONFIG), ("c.yml", YAML_CONFIG), ("c.json", JSON_CONFIG)])
def test_yaml_and_json_parse_to_the_same_config(tmp_path: Path, name: str, text: str) -> None:
    config = load_file(tmp_path / name, text)
    data = {k: v for k, v in config.data.items() if k != "$schema"}
    expected = copy.deepcopy(DEFAULTS)
    expected["engine"] = "podman"
    expected["defaults"]["timeoutMs"] = 5000
    expected["defaults"]["memoryLimit"] = "256m"
    expected["network"]["whitelist"] = ["packages.example.com"]
    expected["baseImages"] = {"python": "python:3.12-slim"}
    expected["prebuiltImages"] = [
        {
            "tag": "isol8-data",
            "runtime": "python",
            "installPackages": ["numpy", "pandas"],
            "setupScript": "echo ready\n",
        },
        {"tag": "isol8-web", "runtime": "node"},
    ]
    assert data == expected
    assert config.source == str(tmp_path / name)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "{}\n"])
def test_empty_config_file_means_the_defaults(tmp_path: Path, text: str) -> None:
    config = load_file(tmp_path / "c.yaml", text)
    assert config.data == DEFAULTS
    assert config.source == str(tmp_path / "c.yaml")


def test_parse_config_text_returns_only_what_the_file_says() -> None:
    assert parse_config_text("defaults:\n  pidsLimit: 32\n", "x.yaml") == {"defaults": {"pidsLimit": 32}}


def test_a_config_file_spelling_out_the_defaults_is_accepted() -> None:
    assert parse_config_text(json.dumps(DEFAULTS), "defaults.json") == DEFAULTS


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_non_finite_cpu_limit_is_rejected(value: str) -> None:
    with pytest.raises(ConfigError, match="defaults.cpuLimit"):
        parse_config_text(f"defaults:\n  cpuLimit: {value}\n", "c.yaml")


# ---- layering ------------------------------------------------------------------------------------


def merged(base: dict[str, object], *overs: dict[str, object]) -> dict[str, object]:
    return merge(base, [Layer(f"layer{i}", over) for i, over in enumerate(overs)])[0]


@pytest.mark.parametrize(
    ("base", "over", "expected"),
    [
        ({"a": 1, "b": 2}, {"b": 3}, {"a": 1, "b": 3}),
        ({"d": {"x": 1, "y": 2}}, {"d": {"y": 5}}, {"d": {"x": 1, "y": 5}}),
        ({"d": {"e": {"x": 1, "y": 2}}}, {"d": {"e": {"x": 9}}}, {"d": {"e": {"x": 9, "y": 2}}}),
        ({"l": [1, 2, 3]}, {"l": [4]}, {"l": [4]}),  # lists are replaced, not appended
        ({"l": [1, 2]}, {"l": []}, {"l": []}),
        ({"d": {"x": 1}}, {"d": {}}, {"d": {"x": 1}}),
        ({"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
        ({"a": {"b": 2}}, {"a": 1}, {"a": 1}),
        ({"a": None}, {"a": "docker"}, {"a": "docker"}),
        ({}, {"new": {"k": [1]}}, {"new": {"k": [1]}}),
    ],
)
def test_merge(base: dict[str, object], over: dict[str, object], expected: dict[str, object]) -> None:
    before = copy.deepcopy((base, over))
    assert merged(base, over) == expected
    assert (base, over) == before  # neither input is modified


def test_merge_result_shares_nothing_with_its_inputs() -> None:
    base = {"d": {"l": [1]}}
    over = {"o": {"l": [2]}}
    result = merged(base, over)
    result["d"]["l"].append(99)  # type: ignore[index]
    result["o"]["l"].append(99)  # type: ignore[index]
    assert base == {"d": {"l": [1]}}
    assert over == {"o": {"l": [2]}}


def test_each_layer_over_the_one_before_and_every_key_knows_its_origin() -> None:
    base = {"m": {"a": 1, "b": 2}, "l": [1], "s": "x"}
    layers = [Layer("user", {"m": {"a": 10}, "l": [2]}), Layer("project", {"m": {"b": 20}}), Layer("env", {"s": "y"})]
    data, origins = merge(base, layers)
    assert data == {"m": {"a": 10, "b": 20}, "l": [2], "s": "y"}
    assert origins == {"m.a": "user", "l": "user", "m.b": "project", "s": "env"}
    assert leaves(data, origins) == [("user", "m.a", 10), ("project", "m.b", 20), ("user", "l", [2]), ("env", "s", "y")]


def test_a_replaced_mapping_forgets_the_origins_inside_it() -> None:
    data, origins = merge({"a": {}}, [Layer("one", {"a": {"x": {"y": 1}}}), Layer("two", {"a": {"x": 5}})])
    assert data == {"a": {"x": 5}}
    assert origins == {"a.x": "two"}
    assert origin_of("a.x", origins) == "two"
    assert origin_of("a.z", {"a": "one"}) == "one"
    assert origin_of("b", origins) == BUILT_IN


def test_env_layers_are_named_after_their_variables() -> None:
    env = {"ISOL8_ENGINE": "podman", "ISOL8_CA_BUNDLE": "none", "ISOL8_DEBUG": "1", "ISOL8_NPM_REGISTRY": ""}
    assert env_layers(env) == [
        Layer("ISOL8_ENGINE", {"engine": "podman"}),
        Layer("ISOL8_DEBUG", {"debug": True}),
        Layer("ISOL8_CA_BUNDLE", {"packages": {"caBundle": "none"}}),
    ]
    for no in ("0", "false", "No", "off"):
        assert env_layers({"ISOL8_DEBUG": no}) == [Layer("ISOL8_DEBUG", {"debug": False})]


def test_the_user_file_survives_a_project_file(dirs: tuple[Path, Path]) -> None:
    """The quick start writes baseImages to the user file; a project file must not hide them."""
    cwd, home = dirs
    user = touch(home / ".isol8" / "config.json", '{"baseImages": {"python": "local/python:1"}, "maxConcurrent": 2}')
    project = touch(cwd / "isol8.config.json", '{"maxConcurrent": 4}')
    config = load_config(None, cwd=cwd, home=home, env={})
    assert config.base_images == {"python": "local/python:1"}
    assert config.server.max_concurrent == 4
    assert config.sources == (str(user), str(project))
    assert config.origins == {"baseImages.python": str(user), "maxConcurrent": str(project)}
    assert load_config(None, cwd=cwd, home=home, env={}, user=False).base_images == {}


def test_variables_are_over_every_file_and_are_checked_like_a_file(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    touch(cwd / "isol8.config.json", '{"engine": "docker", "packages": {"caBundle": "/x.pem"}}')
    config = load_config(None, cwd=cwd, home=home, env={"ISOL8_ENGINE": "podman", "ISOL8_CA_BUNDLE": "none"})
    assert config.backend.engine == "podman"
    assert config.packages.ca_bundle == "none"
    assert config.origins["engine"] == "ISOL8_ENGINE"
    with pytest.raises(ConfigError, match="ISOL8_ENGINE: engine: expected one of docker, podman"):
        load_config(None, cwd=cwd, home=home, env={"ISOL8_ENGINE": "lxc"})


def test_an_invalid_user_file_names_itself_even_under_a_valid_project_file(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    user = touch(home / ".isol8" / "config.yaml", "maxConcurrent: 0\n")
    touch(cwd / "isol8.config.json", '{"maxConcurrent": 4}')
    with pytest.raises(ConfigError, match=re.escape(f"{user}: maxConcurrent")):
        load_config(None, cwd=cwd, home=home, env={})


def test_config_file_merges_over_defaults_key_by_key(tmp_path: Path) -> None:
    config = load_file(tmp_path / "c.yaml", "defaults:\n  timeoutMs: 5000\nnetwork:\n  blacklist: [evil.example]\n")
    assert config.run.timeout_ms == 5000
    for key, value in DEFAULTS["defaults"].items():
        if key != "timeoutMs":
            assert config.data["defaults"][key] == value, key
    assert config.data["network"] == {"whitelist": [], "blacklist": ["evil.example"], "allowPrivate": [], "hosts": {}}
    assert config.data["maxConcurrent"] == DEFAULTS["maxConcurrent"]


def test_loaded_config_does_not_alias_defaults(tmp_path: Path) -> None:
    pristine = copy.deepcopy(DEFAULTS)
    config = load_file(tmp_path / "c.yaml", "network:\n  whitelist: [a.example]\n")
    config.data["network"]["blacklist"].append("mutated")
    config.data["defaults"]["timeoutMs"] = 1
    Config().data["baseImages"]["python"] = "mutated"
    assert DEFAULTS == pristine


def test_load_config_without_a_file_is_the_defaults(tmp_path: Path) -> None:
    config = load_config(None, cwd=tmp_path, home=tmp_path, env={})
    assert config.source is None
    assert config.data == DEFAULTS


def test_load_config_follows_the_search_order(tmp_path: Path) -> None:
    touch(tmp_path / "home" / ".isol8" / "config.yml", "engine: docker\n")
    assert load_config(None, cwd=tmp_path, home=tmp_path / "home", env={}).backend.engine == "docker"
    chosen = touch(tmp_path / "chosen.json", '{"engine": "podman"}')
    config = load_config(None, cwd=tmp_path, home=tmp_path / "home", env={"ISOL8_CONFIG": str(chosen)})
    assert (config.backend.engine, config.source) == ("podman", str(chosen))


# ---- Config properties --------------------------------------------------------------------------


def test_config_properties_of_the_defaults() -> None:
    config = Config()
    assert config.backend.engine is None
    assert config.base_images == {}
    assert config.prebuilt_images == ()
    assert config.backend.seccomp_profile is None
    assert config.run.timeout_ms == 30_000
    assert config.source is None


def test_config_properties_from_a_file(tmp_path: Path) -> None:
    config = load_file(tmp_path / "c.yaml", YAML_CONFIG + "security:\n  seccompProfile: /etc/isol8/strict.json\n")
    assert config.backend.engine == "podman"
    assert config.base_images == {"python": "python:3.12-slim"}
    assert config.backend.seccomp_profile == "/etc/isol8/strict.json"
    assert config.prebuilt_images == (
        PrebuiltImage(
            tag="isol8-data", runtime="python", install_packages=("numpy", "pandas"), setup_script="echo ready\n"
        ),
        PrebuiltImage(tag="isol8-web", runtime="node", install_packages=(), setup_script=None),
    )


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("docker", "docker"), ("podman", "podman")])
def test_config_engine_property(value: str | None, expected: str | None) -> None:
    assert Config({**DEFAULTS, "engine": value}).backend.engine == expected


# ---- import cost --------------------------------------------------------------------------------


def test_load_config_without_a_file_does_not_import_yaml(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from isol8.config import load_config\n"
        "assert load_config().source is None\n"
        "print('yaml' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ISOL8_CONFIG"}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_backends_key_and_certificate_paths_are_the_config_files_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's client expands no ~ and runs from anywhere: the paths reach it absolute."""
    from isol8.config import read_layer

    monkeypatch.setenv("HOME", "/home/me")
    path = tmp_path / "isol8.config.yaml"
    path.write_text("backend:\n  identity: ~/.ssh/id\n  tlsCertPath: certs\n")
    backend = read_layer(str(path)).data["backend"]
    assert backend == {"identity": "/home/me/.ssh/id", "tlsCertPath": str(tmp_path / "certs")}


def test_the_shared_registry_and_a_prebuilt_images_push_are_read_and_checked() -> None:
    text = (
        '{"registry": {"repository": "localhost:5000/team", "tlsVerify": false}, "prebuiltImages": ['
        '{"tag": "a", "runtime": "python", "push": true},'
        '{"tag": "b", "runtime": "python", "push": "localhost:5000/x/b:1"}]}'
    )
    config = Config({**DEFAULTS, **parse_config_text(text, "f.json")})
    assert config.registry == ("localhost:5000/team", False)
    assert [p.push for p in config.prebuilt_images] == [True, "localhost:5000/x/b:1"]
    assert Config().registry == (None, True)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"registry": {"repository": "team/images"}}', "registry.repository: not a registry repository"),
        ('{"registry": {"repository": "localhost:5000/Team"}}', "its path"),
        ('{"prebuiltImages": [{"tag": "a", "runtime": "python", "push": "me/a:1"}]}', "a registry host first"),
    ],
)
def test_a_registry_reference_without_a_host_is_refused(text: str, said: str) -> None:
    """Without a host, the engines push to their default registry: a public one, by accident."""
    with pytest.raises(ConfigError, match=re.escape(said)):
        parse_config_text(text, "f.json")


# ---- isol8.config.parsed: an unchanged file is not parsed again --------------------------------------


def test_parsed_data_is_reused_for_the_same_text_of_the_same_file_only(tmp_path: Path) -> None:
    from isol8.config import parsed

    source = str(tmp_path / "config.json")
    data = parse_config_text('{"defaults": {"timeoutMs": 5000}}', source)
    assert parsed.kept(source, '{"defaults": {"timeoutMs": 5000}}') == data
    assert parsed.kept(source, '{"defaults": {"timeoutMs": 6000}}') is None
    assert parsed.kept(str(tmp_path / "other.json"), '{"defaults": {"timeoutMs": 5000}}') is None
    with pytest.raises(ConfigError, match="not valid JSON"):  # never kept: nothing to reuse
        parse_config_text("{", source)
    assert parsed.kept(source, "{") is None


def test_an_entry_is_named_by_the_fnv1a_hash_of_the_absolute_path() -> None:
    from isol8.config import parsed

    assert parsed._fnv1a(b"") == 0xCBF29CE484222325  # FNV-1a 64's published test vectors
    assert parsed._fnv1a(b"a") == 0xAF63DC4C8601EC8C
    assert parsed._fnv1a(b"foobar") == 0x85944171F73967E8
    where, path = parsed._entry("config.json")
    assert where == os.path.abspath("config.json")
    assert os.path.basename(path) == f"{parsed._fnv1a(os.fsencode(where)):016x}.marshal"


def test_kept_data_is_validated_again_and_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    from isol8.config import parsed

    source, text = str(tmp_path / "config.json"), '{"defaults": {"timeoutMs": 5000}}'
    parsed.keep(source, text, {"defaults": {"timeoutMs": -1}})  # as an older isol8 might have kept it
    with pytest.raises(ConfigError, match="timeoutMs"):
        parse_config_text(text, source)
    (entry,) = (Path(os.environ["HOME"]) / ".cache" / "isol8" / "config").iterdir()
    entry.write_bytes(b"\x00garbage")
    assert parsed.kept(source, text) is None
    assert parse_config_text(text, source) == {"defaults": {"timeoutMs": 5000}}


def test_data_that_marshal_cannot_hold_is_not_kept(tmp_path: Path) -> None:
    import datetime

    from isol8.config import parsed

    source = str(tmp_path / "config.yaml")
    parsed.keep(source, "note: 2026-12-07\n", {"note": datetime.date(2026, 12, 7)})  # YAML's dates
    assert parsed.kept(source, "note: 2026-12-07\n") is None


def test_an_entry_someone_else_could_have_written_is_ignored(tmp_path: Path) -> None:
    from isol8.config import parsed

    source, text = str(tmp_path / "config.json"), '{"defaults": {"timeoutMs": 5000}}'
    parse_config_text(text, source)
    (entry,) = (Path(os.environ["HOME"]) / ".cache" / "isol8" / "config").iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600 and parsed.kept(source, text) is not None
    entry.chmod(0o620)  # writable by its group
    assert parsed.kept(source, text) is None
    entry.chmod(0o600)
    if os.getuid() == 0:
        os.chown(entry, 4242, -1)  # another user's
    else:
        entry.chmod(0o602)  # writable by anyone
    assert parsed.kept(source, text) is None
    assert parse_config_text(text, source) == {"defaults": {"timeoutMs": 5000}}  # parsed again


def test_a_config_path_that_is_not_utf8_is_kept_too(tmp_path: Path) -> None:
    from isol8.config import parsed

    folder = tmp_path / os.fsdecode(b"proj\xe9")
    folder.mkdir()
    source = str(folder / "isol8.config.yaml")
    assert parse_config_text("defaults:\n  timeoutMs: 5000\n", source) == {"defaults": {"timeoutMs": 5000}}
    assert parsed.kept(source, "defaults:\n  timeoutMs: 5000\n") == {"defaults": {"timeoutMs": 5000}}
