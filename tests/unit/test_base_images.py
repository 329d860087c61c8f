"""isol8.core.base_images.ensure_base_image: up to date, rebuilt, or kept when its base cannot be had."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from isol8 import labels as L
from isol8.core.base_images import build_hash, ensure_base_image
from isol8.errors import BaseImageUnavailable, BuildFailed, EngineError, EngineUnavailable, RegistryUnreachable
from isol8.models import ImageInfo

BASE = "unreachable.invalid/debian:12"


class Engine:
    """A backend with images by name; pull fails with `pull_error` unless it is None."""

    def __init__(self, images: Mapping[str, ImageInfo], pull_error: EngineError | None = None) -> None:
        self.images = dict(images)
        self.pull_error = pull_error
        self.calls: list[str] = []

    def image(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    def pull(self, ref: str, *, tls_verify: bool = True) -> None:
        self.calls.append(f"pull {ref}")
        if self.pull_error is not None:
            raise self.pull_error

    def build(self, *, tag: str, build_args: Mapping[str, str], **_: object) -> str:
        self.calls.append(f"build {tag} FROM {build_args['BASE_IMAGE']}")
        if self.pull_error is not None:
            raise BuildFailed(["build"], 1, message=f"build of {tag} failed: {self.pull_error.message}")
        return "f" * 64

    def remove_images(self, refs: list[str]) -> list[EngineError]:
        self.calls.append(f"rmi {' '.join(refs)}")
        return []


def current(hash_: str = "old") -> ImageInfo:
    return ImageInfo(id="c" * 64, tags=("isol8:bash",), labels={L.BUILD_HASH: hash_})


UNREACHABLE = RegistryUnreachable(["pull"], 1, message="dial tcp: lookup unreachable.invalid: no such host")


def test_an_up_to_date_image_is_kept_without_asking_the_registry() -> None:
    engine = Engine({"isol8:bash": current(build_hash("bash", BASE))}, pull_error=UNREACHABLE)
    outcome = ensure_base_image(engine, "bash", base_image=BASE)  # type: ignore[arg-type]
    assert (outcome.built, outcome.warning, engine.calls) == (False, None, [])


def test_an_out_of_date_image_whose_base_cannot_be_had_is_kept_with_a_warning() -> None:
    engine = Engine({"isol8:bash": current()}, pull_error=UNREACHABLE)
    outcome = ensure_base_image(engine, "bash", base_image=BASE)  # type: ignore[arg-type]
    assert (outcome.built, outcome.image_id, engine.calls) == (False, "c" * 64, [f"pull {BASE}"])
    assert outcome.warning == (
        f"isol8:bash: could not check its base image {BASE} (dial tcp: lookup unreachable.invalid: no such host); "
        f"kept the existing {'c' * 12}"
    )


def test_strict_makes_the_same_warning_a_failure() -> None:
    engine = Engine({"isol8:bash": current()}, pull_error=UNREACHABLE)
    warning = ensure_base_image(engine, "bash", base_image=BASE).warning  # type: ignore[arg-type]
    with pytest.raises(BaseImageUnavailable) as caught:
        ensure_base_image(engine, "bash", base_image=BASE, strict=True)  # type: ignore[arg-type]
    assert caught.value.message == warning


@pytest.mark.parametrize("images", [{}, {"isol8:bash": current()}], ids=["no image to keep", "force"])
def test_without_an_image_to_keep_or_with_force_the_build_fails_loudly(images: dict[str, ImageInfo]) -> None:
    engine = Engine(images, pull_error=UNREACHABLE)
    with pytest.raises(BuildFailed, match="build of isol8:bash failed"):
        ensure_base_image(engine, "bash", base_image=BASE, force=bool(images))  # type: ignore[arg-type]
    assert engine.calls == [f"build isol8:bash FROM {BASE}"]


def test_a_local_base_is_built_on_without_a_pull() -> None:
    engine = Engine({"isol8:bash": current(), BASE: ImageInfo(id="b" * 64, tags=(BASE,))})
    outcome = ensure_base_image(engine, "bash", base_image=BASE)  # type: ignore[arg-type]
    assert outcome.built
    assert engine.calls == [f"build isol8:bash FROM {BASE}", f"rmi {'c' * 64}"]


def test_a_pullable_base_is_pulled_then_built_on() -> None:
    engine = Engine({"isol8:bash": current()})
    assert ensure_base_image(engine, "bash", base_image=BASE).built  # type: ignore[arg-type]
    assert engine.calls[:2] == [f"pull {BASE}", f"build isol8:bash FROM {BASE}"]


def test_an_unreachable_engine_is_not_taken_for_an_unreachable_registry() -> None:
    engine = Engine({"isol8:bash": current()}, pull_error=EngineUnavailable(["pull"], 1, message="no daemon"))
    with pytest.raises(EngineUnavailable):
        ensure_base_image(engine, "bash", base_image=BASE)  # type: ignore[arg-type]


def test_a_registry_that_says_there_is_no_such_image_is_a_failure_not_a_warning() -> None:
    """A typo in baseImages, say: the registry answered, so the old image is not kept quietly."""
    answered = EngineError(["pull"], 1, message="manifest for x/debain:12 not found: manifest unknown")
    engine = Engine({"isol8:bash": current()}, pull_error=answered)
    with pytest.raises(BuildFailed, match=f"base image {BASE}: manifest for x/debain:12 not found"):
        ensure_base_image(engine, "bash", base_image=BASE)  # type: ignore[arg-type]
