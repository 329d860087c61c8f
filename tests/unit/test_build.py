"""isol8.backends.engine.build: which images a build's output names, and which of them are its leftovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from isol8.backends.engine import argv as A
from isol8.backends.engine.build import leftovers, step_images
from isol8.backends.engine.dialect import DOCKER, PODMAN
from isol8.models import ImageInfo

# A failed `docker build` (classic builder, docker 20.10) of a custom image, as isol8 saw it.
DOCKER_FAILED = """\
Sending build context to Docker daemon  3.584kB
Step 1/8 : FROM isol8:python
 ---> 3a0627dfa658
Step 2/8 : USER root
 ---> Using cache
 ---> 698512110dfe
Step 3/8 : COPY isol8-build /tmp/isol8-build
 ---> 55a039b95999
Step 4/8 : RUN python3 -m pip install -r /tmp/isol8-build/requirements.txt
 ---> Running in fbca0b24498a
ERROR: No matching distribution found for nonexistent-pkg
Removing intermediate container fbca0b24498a
The command '/bin/sh -c python3 -m pip install' returned a non-zero code: 1
""".splitlines()

# The same with podman 4.3.
PODMAN_FAILED = """\
STEP 1/8: FROM isol8:python
STEP 2/8: USER root
--> Using cache a2a022b0990e3c1f
--> a2a022b0990
STEP 3/8: COPY isol8-build /tmp/isol8-build
--> 47ad0983f0e
STEP 4/8: RUN python3 -m pip install -r /tmp/isol8-build/requirements.txt
ERROR: No matching distribution found for nonexistent-pkg
Error: error building at STEP "RUN python3 -m pip install": exit status 1
""".splitlines()


def test_step_images_of_a_docker_build() -> None:
    assert step_images(DOCKER_FAILED) == ["698512110dfe", "55a039b95999"]  # not the FROM image


def test_step_images_of_a_podman_build() -> None:
    assert step_images(PODMAN_FAILED) == ["a2a022b0990e3c1f", "a2a022b0990", "47ad0983f0e"]


def test_step_images_ignore_containers_and_other_lines() -> None:
    lines = [" ---> Running in fbca0b24498a", "--> not-hex", "echo ---> 1a2b3c4d5e6f7", "3a0627dfa658", " ---> 3a06"]
    assert step_images(lines) == []


START = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


def image(id_: str, parent: str = "", created: datetime = START) -> ImageInfo:
    full = id_ + "0" * (64 - len(id_))
    return ImageInfo(id=full, tags=(), created=created, parent=parent and parent + "0" * (64 - len(parent)))


def test_leftovers_are_the_dangling_layers_of_this_builds_chain_newest_first() -> None:
    steps = step_images(DOCKER_FAILED)  # USER 698512110dfe (cached), COPY 55a039b95999
    copy = image("55a039b95999", parent="698512110dfe")
    assert leftovers(steps, [copy], START) == [copy.id]
    chain = [image("b2", "a1"), image("c3", "b2")]
    assert leftovers(["a1", "b2", "c3"], chain, START) == [image("c3").id, image("b2").id]
    assert leftovers(["a1", "b2", "c3"], chain, START, bases={"a1"}) == [image("c3").id]
    first = image("a1", parent="f0f0")  # the first step's layer, on the FROM image: made by this build
    assert leftovers(["a1", "b2"], [first, image("b2", "a1")], START) == [image("b2").id, first.id]


def test_a_step_line_the_build_printed_itself_cannot_name_an_unrelated_image() -> None:
    """RUN echo ' ---> <id>' puts any ID among the steps: only a layer built on this build's chain counts."""
    steps = [*step_images(DOCKER_FAILED), "9d43b345d5b6", "3a0627dfa658", "0b0b0b0b0b0b", "0c0c0c0c0c0c"]
    unrelated = image("9d43b345d5b6", parent="77aa77aa77aa")  # someone's dangling image
    pinned_base = image("3a0627dfa658", created=START - timedelta(days=30))  # the FROM image, by digest
    from_base = image("0b0b0b0b0b0b", parent="3a0627dfa658")  # another build's layer on the same FROM
    older = image("0c0c0c0c0c0c", parent="55a039b95999", created=START - timedelta(minutes=1))
    assert leftovers(steps, [unrelated, pinned_base, from_base, older], START, bases={"3a0627dfa658"}) == []


def test_the_output_kept_of_a_build_is_bounded() -> None:
    from isol8.backends.engine.build import MAX_STEPS, TAIL_LINES, _Output

    output = _Output()
    for i in range(100_000):
        output.add(f" ---> {i:012x}")
    assert len(output.tail) == TAIL_LINES
    assert len(output.steps) == MAX_STEPS


def test_dangling_images_argv() -> None:
    for d in (DOCKER, PODMAN):
        assert A.dangling_images_argv(d) == [d.binary, "images", "-q", "--no-trunc", "--filter", "dangling=true"]
