"""isol8.backends.engine.build: which images a build's output names, and which of them are its leftovers."""

from __future__ import annotations

from isol8.backends.engine import argv as A
from isol8.backends.engine.build import leftovers, step_images
from isol8.backends.engine.dialect import DOCKER, PODMAN

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
    assert step_images(DOCKER_FAILED) == ["3a0627dfa658", "698512110dfe", "55a039b95999"]


def test_step_images_of_a_podman_build() -> None:
    assert step_images(PODMAN_FAILED) == ["a2a022b0990e3c1f", "a2a022b0990", "47ad0983f0e"]


def test_step_images_ignore_containers_and_other_lines() -> None:
    lines = [" ---> Running in fbca0b24498a", "--> not-hex", "echo ---> 1a2b3c4d5e6f7", "3a0627dfa658", " ---> 3a06"]
    assert step_images(lines) == []


def test_leftovers_are_the_dangling_steps_newest_first() -> None:
    full = {s: s + "0" * (64 - len(s)) for s in ("3a0627dfa658", "698512110dfe", "55a039b95999")}
    dangling = [full["55a039b95999"], "f" * 64]  # the base (tagged) and a cache layer (has children) are not
    assert leftovers(step_images(DOCKER_FAILED), dangling) == [full["55a039b95999"]]
    assert leftovers(["aaa", "bbb"], ["bbb" + "1" * 61, "aaa" + "2" * 61]) == ["bbb" + "1" * 61, "aaa" + "2" * 61]
    assert leftovers([], ["a" * 64]) == []


def test_dangling_images_argv() -> None:
    for d in (DOCKER, PODMAN):
        assert A.dangling_images_argv(d) == [d.binary, "images", "-q", "--no-trunc", "--filter", "dangling=true"]
