"""Shared images: what skopeo is asked, which registry image is chosen, and when none is."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from isol8 import labels as L
from isol8 import runtimes
from isol8.backends import registry
from isol8.config import RegistrySettings
from isol8.core import shared_images
from isol8.core.base_images import seccomp_label
from isol8.core.discovery import Resolution
from isol8.ecosystems import parse_specs
from isol8.errors import EngineError, RegistryUnreadable
from isol8.models import ImageInfo

PYTHON = runtimes.get("python")
SETTINGS = RegistrySettings("reg.example:5000/team", tls_verify=False)
REPO = "reg.example:5000/team/python"


def labels(deps: str, resolved: str, **extra: str) -> dict[str, str]:
    return {
        L.RUNTIME: "python",
        L.MANAGED: "true",
        L.DEPENDENCIES: deps,
        L.RESOLVED: resolved,
        L.SECCOMP_PROFILE: seccomp_label(),
        **extra,
    }


class Registry:
    def __init__(self, images: dict[str, dict[str, str]]) -> None:
        self.images = images  # tag -> labels
        self.unreadable = False

    def images_of(self, repository: str, tls_verify: bool) -> list[ImageInfo]:
        assert (repository, tls_verify) == (REPO, False)
        if self.unreadable:
            raise RegistryUnreadable("skopeo is not installed")
        return [
            ImageInfo(f"sha256:{tag}", (f"{REPO}:{tag}",), found, datetime(2026, 1, 1 + n, tzinfo=UTC))
            for n, (tag, found) in enumerate(self.images.items())
        ]


class Engine:
    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.local: dict[str, ImageInfo] = {}
        self.pulled: list[tuple[str, bool]] = []
        self.removed: list[str] = []
        self.fails = False

    def registry_images(self, repository: str, *, tls_verify: bool = True, limit: int = 200) -> list[ImageInfo]:
        return self.reg.images_of(repository, tls_verify)[:limit]

    def image(self, ref: str) -> ImageInfo | None:
        return self.local.get(ref)

    def pull(self, ref: str, *, tls_verify: bool = True) -> None:
        if self.fails:
            raise EngineError(["podman", "pull"], 125, "", "connection refused")
        self.pulled.append((ref, tls_verify))
        tag = ref.rsplit("@sha256:", 1)[1]  # pulled by the digest skopeo read
        self.local[ref] = ImageInfo("id-" + tag, (), self.reg.images[tag], None)

    def tag(self, image: str, ref: str) -> None:
        info = next(i for i in self.local.values() if i.id == image)
        self.local[ref] = dataclasses.replace(info, tags=(*info.tags, ref))

    def remove_images(self, refs: list[str]) -> list[EngineError]:
        self.removed += refs
        self.local = {k: v for k, v in self.local.items() if v.id not in refs}
        return []


@pytest.fixture
def reg() -> Registry:
    return Registry({})


def _find(engine: Engine, install: list[str], local: Resolution | None = None) -> Resolution | None:
    specs = parse_specs(PYTHON, install)
    local = local or Resolution(PYTHON, "isol8:python", "base", specs, "no image has any")
    said: list[str] = []
    return shared_images.from_registry(engine, PYTHON, specs, local, SETTINGS, said.append)  # type: ignore[arg-type]


def test_skopeo_is_asked_without_tls_verification_only_when_told() -> None:
    assert registry.skopeo_argv("list-tags", "r:5000/a", tls_verify=True) == [
        "skopeo",
        "list-tags",
        "docker://r:5000/a",
    ]
    assert registry.skopeo_argv("inspect", "r/a:1", tls_verify=False) == [
        "skopeo",
        "inspect",
        "--tls-verify=false",
        "docker://r/a:1",
    ]


def test_the_exact_image_is_pulled_and_run_by_the_id_the_engine_gives_it(reg: Registry) -> None:
    reg.images = {"a": labels("iniconfig,six", "iniconfig==2.3.1,six==1.17.0"), "b": labels("six", "six==1.17.0")}
    engine = Engine(reg)
    found = _find(engine, ["six"])
    assert found is not None and (found.match, found.image, found.run_ref) == ("exact", f"{REPO}:b", "id-b")
    assert engine.pulled == [(f"{REPO}@sha256:b", False)]
    assert _find(engine, ["six"]) is not None and len(engine.pulled) == 1  # the engine has it now


def test_an_image_with_another_seccomp_profile_or_without_isol8s_labels_is_never_chosen(reg: Registry) -> None:
    reg.images = {
        "real": labels("six", "six==1.17.0"),
        "forged": labels("six", "six==1.17.0", **{L.SECCOMP_PROFILE: '{"defaultAction":"SCMP_ACT_ALLOW"}'}),
        "foreign": {k: v for k, v in labels("six", "six==1.17.0").items() if k != L.MANAGED},
    }
    engine = Engine(reg)
    found = _find(engine, ["six"])
    assert found is not None and found.image == f"{REPO}:real"  # though the others are newer
    reg.images.pop("real")
    assert _find(engine, ["six"]) is None


def test_nothing_better_than_the_engines_own_partial_match_is_pulled(reg: Registry) -> None:
    reg.images = {"a": labels("six", "six==1.17.0")}
    engine = Engine(reg)
    specs = parse_specs(PYTHON, ["six", "iniconfig"])
    local = Resolution(PYTHON, "mine", "partial", specs[:1], "mine has six", image_id="id-mine")
    assert _find(engine, ["six", "iniconfig"], local) is None and engine.pulled == []


def test_a_registry_that_cannot_be_read_or_pulled_from_leaves_the_build_to_the_caller(
    reg: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    reg.images = {"a": labels("six", "six==1.17.0")}
    engine = Engine(reg)
    engine.fails = True
    assert _find(engine, ["six"]) is None
    reg.unreadable = True
    assert _find(engine, ["six"]) is None
    assert "could not pull" in caplog.text and "skopeo is not installed" in caplog.text


def test_a_pulled_image_that_is_not_what_the_registry_described_is_not_used(reg: Registry) -> None:
    reg.images = {"a": labels("six", "six==1.17.0")}
    engine = Engine(reg)
    real_pull = engine.pull

    def moved(ref: str, *, tls_verify: bool = True) -> None:  # another manifest than skopeo read
        real_pull(ref, tls_verify=tls_verify)
        engine.local[ref] = ImageInfo("id-x", (ref,), labels("requests", "requests==2.0"), None)

    engine.pull = moved  # type: ignore[method-assign]
    assert _find(engine, ["six"]) is None
    assert engine.removed == ["id-x"] and engine.local == {}  # not left for local discovery to find


def test_the_default_reference_is_the_runtimes_repository_tagged_with_the_definitions_hash() -> None:
    assert shared_images.default_ref(SETTINGS, "node", "ab" * 32) == "reg.example:5000/team/node:" + "ab" * 12
