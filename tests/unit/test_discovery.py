"""Smart discovery: choose() over synthetic images, and candidates()/resolve() over a faked engine (`fp`, strict)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from isol8 import labels as L
from isol8.backends.engine.backend import EngineBackend
from isol8.backends.engine.dialect import DOCKER, PODMAN
from isol8.core.custom_images import ImageDefinition
from isol8.core.discovery import Candidate, Resolution, candidates, choose, resolve
from isol8.ecosystems import Spec, parse_specs
from isol8.errors import UsageError
from isol8.models import ImageInfo
from isol8.runtimes import RUNTIMES

DATA = Path(__file__).resolve().parent.parent / "data"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BASE = "isol8:python"
PYTHON = RUNTIMES["python"]
LIST_PYTHON = ["docker", "images", "-q", "--no-trunc", "--filter", "label=org.isol8.runtime=python"]


AUTO = "auto"


def image(
    ref: str,
    deps: str | None,
    resolved: str | None = AUTO,
    *,
    minutes: int = 0,
    setup: str | None = None,
    created: datetime | None | str = AUTO,
) -> ImageInfo:
    """An ImageInfo as from_inspect would make it for a finished build; created `minutes` after T0.

    By default every package in `deps` is recorded as resolved to 1.0.0; resolved=None leaves the label out.
    """
    labels = {L.MANAGED: "true", L.RUNTIME: "python"}
    if deps is not None:
        labels[L.DEPENDENCIES] = deps
    if resolved == AUTO:
        resolved = ",".join(f"{re.split(r'[^a-z0-9._-]', d)[0]}==1.0.0" for d in (deps or "").split(",") if d)
    if resolved is not None:
        labels[L.RESOLVED] = resolved
    if setup is not None:
        labels[L.SETUP] = setup
    when = T0 + timedelta(minutes=minutes) if created == AUTO else created
    assert not isinstance(when, str)
    return ImageInfo(id=f"id-{ref}", tags=(ref,), labels=labels, created=when)


def cand(info: ImageInfo, runtime: str = "python") -> Candidate:
    c = Candidate.from_image(RUNTIMES[runtime], info)
    assert c is not None, info.labels
    return c


def want(*values: str, runtime: str = "python") -> tuple[Spec, ...]:
    return parse_specs(RUNTIMES[runtime], values)


def texts(specs: Sequence[Spec]) -> list[str]:
    return [s.text for s in specs]


# ---- Candidate.from_image -----------------------------------------------------------------------


def test_candidate_from_image_reads_the_labels() -> None:
    c = cand(image("my-py:v1", "colorama,six==1.17.0", "colorama==0.4.6,six==1.17.0", minutes=5))
    assert c.ref == "my-py:v1"
    assert sorted(c.packages) == ["colorama", "six"]
    assert c.packages["six"].constraint == "==1.17.0"
    assert c.versions == {"colorama": "0.4.6", "six": "1.17.0"}
    assert c.created == T0 + timedelta(minutes=5)


def test_candidate_ref_is_the_id_when_the_image_has_no_tag() -> None:
    info = ImageInfo(id="f" * 64, tags=(), labels={L.DEPENDENCIES: "six", L.RESOLVED: "six==1.17.0"})
    assert cand(info).ref == "f" * 64


def test_candidate_without_a_creation_time_sorts_as_oldest() -> None:
    c = cand(image("a", "six", created=None))
    assert c.created == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "deps",
    [
        None,  # a plain base image
        "",
        "six;touch /tmp/pwned",
        "$(id)",
        "six,`id`",
        "six,--index-url=https://evil.example",
        "pkg @ https://evil.example/p.whl",
    ],
)
def test_an_image_whose_dependencies_label_is_not_isol8s_is_not_a_candidate(deps: str | None) -> None:
    assert Candidate.from_image(PYTHON, image("odd", deps, "six==1.17.0")) is None


def test_an_image_without_resolved_versions_is_not_a_candidate() -> None:
    """Only a finished build records org.isol8.resolved; a failed one can leave labelled layers behind."""
    assert Candidate.from_image(PYTHON, image("half-built", "six", resolved=None)) is None
    assert Candidate.from_image(PYTHON, image("built", "six", resolved="six==1.17.0")) is not None


def test_a_label_for_another_ecosystem_is_not_a_candidate() -> None:
    assert Candidate.from_image(RUNTIMES["node"], image("py", "Foo_Bar")) is None
    assert Candidate.from_image(RUNTIMES["deno"], image("node", "lodash@4")) is None


@pytest.mark.parametrize(
    ("runtime", "values"),
    [
        ("python", ["six", "colorama==0.4.6"]),
        ("node", ["lodash@^4", "@scope/pkg"]),
        ("deno", ["npm:zod@3", "jsr:@std/path"]),
        ("bash", ["jq=1.6-2", "curl"]),
    ],
)
def test_the_label_isol8_writes_is_read_back(runtime: str, values: list[str]) -> None:
    specs = parse_specs(RUNTIMES[runtime], values)
    label = ImageDefinition(RUNTIMES[runtime], specs).dependencies_label()
    resolved = ",".join(f"{spec.name}==1.0.0" for spec in specs)
    info = ImageInfo(id="x", tags=("t",), labels={L.DEPENDENCIES: label, L.RESOLVED: resolved})
    c = Candidate.from_image(RUNTIMES[runtime], info)
    assert c is not None
    assert sorted(c.packages.values()) == sorted(specs)


@pytest.mark.parametrize("values", [["numpy>=1,<2", "six"], ["requests[socks,http2]"]])
def test_a_label_with_commas_inside_a_spec_is_read_back(values: list[str]) -> None:
    specs = parse_specs(PYTHON, values)
    label = ImageDefinition(PYTHON, specs).dependencies_label()
    resolved = "numpy==1.26.4,requests==2.32.3,six==1.17.0"
    info = ImageInfo(id="x", tags=("t",), labels={L.DEPENDENCIES: label, L.RESOLVED: resolved})
    c = Candidate.from_image(PYTHON, info)
    assert c is not None
    assert choose(PYTHON, specs, [c], BASE).match == "exact"


# ---- choose: exact, superset, partial, base ------------------------------------------------------


def test_nothing_requested_is_the_base_image() -> None:
    found = [cand(image("a", "six", "six==1.17.0"))]
    r = choose(PYTHON, (), found, BASE)
    assert (r.image, r.match, r.install) == (BASE, "base", ())


def test_exact_beats_a_newer_superset() -> None:
    exact = cand(image("exact", "colorama,six", "colorama==0.4.6,six==1.17.0", minutes=0))
    superset = cand(image("super", "colorama,numpy,six", "colorama==0.4.6,numpy==2.1.3,six==1.17.0", minutes=60))
    for found in ([exact, superset], [superset, exact]):
        r = choose(PYTHON, want("six", "colorama"), found, BASE)
        assert (r.image, r.match, r.install) == ("exact", "exact", ())
        assert "exact" in r.reason and "colorama, six" in r.reason


def test_exact_beats_a_newer_superset_with_a_partial_around() -> None:
    found = [
        cand(image("partial", "six", "six==1.17.0", minutes=90)),
        cand(image("super", "colorama,numpy,six", minutes=60)),
        cand(image("exact", "colorama,six", minutes=0)),
    ]
    assert choose(PYTHON, want("six", "colorama"), found, BASE).image == "exact"


def test_the_smallest_superset_wins_even_when_older() -> None:
    big = cand(image("big", "colorama,numpy,pandas,six", minutes=60))
    small = cand(image("small", "numpy,six", minutes=0))
    middle = cand(image("middle", "colorama,numpy,six", minutes=30))
    for found in itertools.permutations([big, small, middle]):
        r = choose(PYTHON, want("six"), list(found), BASE)
        assert (r.image, r.match, r.install) == ("small", "superset", ())
        assert "1 more (numpy)" in r.reason


def test_partial_picks_the_most_coverage_and_lists_the_rest() -> None:
    two = cand(image("two", "colorama,six", minutes=0))
    one_newer = cand(image("one", "six", minutes=60))
    unrelated = cand(image("unrelated", "attrs", minutes=120))
    for found in itertools.permutations([two, one_newer, unrelated]):
        r = choose(PYTHON, want("six", "colorama", "numpy==2.1.3", "Pandas"), list(found), BASE)
        assert (r.image, r.match) == ("two", "partial")
        assert texts(r.install) == ["numpy==2.1.3", "pandas"]
        assert "numpy==2.1.3, pandas still to install" in r.reason


def test_partial_with_equal_coverage_prefers_fewer_extra_packages_then_the_newest() -> None:
    lean_old = cand(image("lean-old", "six", minutes=0))
    lean_new = cand(image("lean-new", "six", minutes=10))
    fat_newest = cand(image("fat", "attrs,pandas,six", minutes=20))
    for found in itertools.permutations([lean_old, lean_new, fat_newest]):
        r = choose(PYTHON, want("six", "numpy"), list(found), BASE)
        assert (r.image, r.match, texts(r.install)) == ("lean-new", "partial", ["numpy"])


def test_no_match_is_the_base_image_with_everything_to_install() -> None:
    found = [cand(image("a", "attrs")), cand(image("b", "colorama,pandas"))]
    requested = want("six==1.17.0", "numpy")
    r = choose(PYTHON, requested, found, BASE)
    assert (r.image, r.match, r.install) == (BASE, "base", requested)
    assert r.has_setup is False


def test_no_images_at_all_is_the_base_image() -> None:
    r = choose(PYTHON, want("six"), [], BASE)
    assert (r.image, r.match, texts(r.install)) == (BASE, "base", ["six"])


# ---- choose: ties are deterministic --------------------------------------------------------------


def _all_orders(found: list[Candidate], requested: tuple[Spec, ...]) -> set[tuple[str, str, tuple[Spec, ...]]]:
    return {
        (r.image, r.match, r.install)
        for r in (choose(PYTHON, requested, list(p), BASE) for p in itertools.permutations(found))
    }


def test_among_equal_exact_images_the_newest_wins_in_any_order() -> None:
    found = [cand(image(f"exact-{m}", "six", "six==1.17.0", minutes=m)) for m in (5, 40, 0, 39)]
    assert _all_orders(found, want("six")) == {("exact-40", "exact", ())}


def test_among_equal_supersets_the_newest_wins_in_any_order() -> None:
    found = [cand(image(f"super-{m}", "numpy,six", minutes=m)) for m in (5, 40, 0, 39)]
    assert _all_orders(found, want("six")) == {("super-40", "superset", ())}


def test_among_equal_partials_the_newest_wins_in_any_order() -> None:
    found = [cand(image(f"part-{m}", "six", minutes=m)) for m in (5, 40, 0, 39)]
    assert _all_orders(found, want("six", "numpy")) == {("part-40", "partial", want("numpy"))}


@pytest.mark.parametrize(
    ("deps", "requested", "match"),
    [("six", ["six"], "exact"), ("numpy,six", ["six"], "superset"), ("six", ["six", "numpy"], "partial")],
)
def test_identical_images_created_at_the_same_time_are_chosen_the_same_way_in_any_order(
    deps: str, requested: list[str], match: str
) -> None:
    found = [cand(image(ref, deps, minutes=7)) for ref in ("b:1", "a:1", "c:1")]
    found.append(cand(image("old:1", deps, minutes=1)))
    chosen = _all_orders(found, want(*requested))
    assert len(chosen) == 1
    ((image_ref, got_match, _),) = chosen
    assert got_match == match
    assert image_ref in ("a:1", "b:1", "c:1")


def test_identical_images_without_creation_times_are_chosen_the_same_way_in_any_order() -> None:
    found = [cand(image(ref, "six", created=None)) for ref in ("x:1", "y:1", "z:1")]
    assert len(_all_orders(found, want("six"))) == 1


# ---- choose: versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        ("six==1.17.0", "exact"),
        ("six>=1.16,<2", "exact"),
        ("six~=1.17", "exact"),
        ("six", "exact"),
        ("SIX", "exact"),
        ("Six==1.17.0", "exact"),
        ("six==0.0.1", "base"),
        ("six>=2", "base"),
    ],
)
def test_version_constraints_are_checked_against_the_resolved_versions(request_: str, match: str) -> None:
    found = [cand(image("py-six", "six", "six==1.17.0"))]
    r = choose(PYTHON, want(request_), found, BASE)
    assert r.match == match
    if match == "base":
        assert (r.image, texts(r.install)) == (BASE, [want(request_)[0].text])
    else:
        assert (r.image, r.install) == ("py-six", ())


def test_a_constrained_request_is_not_met_by_an_image_without_a_resolved_version_for_it() -> None:
    found = [cand(image("unresolved", "six", resolved="other==1.0"))]
    assert choose(PYTHON, want("six==1.17.0"), found, BASE).match == "base"
    assert choose(PYTHON, want("six"), found, BASE).match == "exact"


def test_the_version_decides_between_two_images_with_the_same_package() -> None:
    old = cand(image("six-16", "six", "six==1.16.0", minutes=0))
    new = cand(image("six-17", "six", "six==1.17.0", minutes=60))
    for found in ([old, new], [new, old]):
        assert choose(PYTHON, want("six<1.17"), found, BASE).image == "six-16"
        assert choose(PYTHON, want("six"), found, BASE).image == "six-17"


def test_a_version_mismatch_turns_an_exact_image_into_a_partial_one() -> None:
    found = [cand(image("img", "colorama,six", "colorama==0.4.6,six==1.17.0"))]
    r = choose(PYTHON, want("colorama", "six==1.16.0"), found, BASE)
    assert (r.image, r.match, texts(r.install)) == ("img", "partial", ["six==1.16.0"])


@pytest.mark.parametrize(
    ("runtime", "deps", "resolved", "request_", "match"),
    [
        ("node", "lodash@^4", "lodash==4.17.21", "lodash@4.17.21", "exact"),
        ("node", "lodash", "lodash==4.17.21", "lodash@^3", "base"),
        ("node", "@scope/pkg", "@scope/pkg==1.2.3", "@scope/pkg@~1.2", "exact"),
        ("deno", "npm:zod@3", "npm:zod==3.23.8", "npm:zod@^3.20", "exact"),
        ("deno", "npm:zod@3", "npm:zod==3.23.8", "npm:zod@4", "base"),
        ("bash", "jq", "jq==1.6-2", "jq=1.6-2", "exact"),
        ("bash", "jq", "jq==1.6-2", "jq=1.7.1-3", "base"),
    ],
)
def test_versions_in_other_ecosystems(runtime: str, deps: str, resolved: str, request_: str, match: str) -> None:
    found = [cand(image("img", deps, resolved), runtime)]
    assert choose(RUNTIMES[runtime], want(request_, runtime=runtime), found, "isol8:" + runtime).match == match


# ---- choose: setup flag and JSON -----------------------------------------------------------------


def test_an_image_with_a_setup_script_is_flagged() -> None:
    found = [cand(image("with-setup", "six", setup="echo hi"))]
    assert choose(PYTHON, want("six"), found, BASE).has_setup is True
    assert choose(PYTHON, want("six", "numpy"), found, BASE).has_setup is True
    assert choose(PYTHON, want("attrs"), found, BASE).has_setup is False


def test_resolution_to_json() -> None:
    r = Resolution(PYTHON, "img", "partial", want("numpy", "six==1.17.0"), "why", has_setup=True)
    assert r.to_json() == {
        "runtime": "python",
        "image": "img",
        "match": "partial",
        "install": ["numpy", "six==1.17.0"],
        "reason": "why",
    }
    json.dumps(r.to_json())


# ---- candidates() and resolve() over a faked engine -----------------------------------------------


def image_id(n: int) -> str:
    return f"{n:064x}"


def inspect_obj(n: int, tags: list[str], labels: dict[str, str] | None, minutes: int = 0) -> dict[str, Any]:
    """One element of `image inspect` output, in docker's shape (keys isol8 ignores included)."""
    created = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    return {
        "Id": f"sha256:{image_id(n)}",
        "RepoTags": tags,
        "RepoDigests": [],
        "Created": created,
        "Size": 1000 + n,
        "Architecture": "amd64",
        "Config": {"User": "1100:1100", "Labels": labels},
    }


def python_labels(deps: str | None, resolved: str = "") -> dict[str, str]:
    labels = {L.MANAGED: "true", L.RUNTIME: "python"}
    if deps is not None:
        labels[L.DEPENDENCIES] = deps
        labels[L.RESOLVED] = resolved
    return labels


def many_images(count: int) -> list[dict[str, Any]]:
    """Image n has p<n> (and six when n is even); every 7th is a base image; every 11th has a foreign label."""
    objs = []
    for n in range(count):
        if n % 7 == 0:
            labels = python_labels(None)
        elif n % 11 == 0:
            labels = python_labels("six;touch /tmp/pwned", "six==1.17.0")
        else:
            deps = f"p{n:03d}" + (",six" if n % 2 == 0 else "")
            labels = python_labels(deps, f"p{n:03d}==1.0.{n}" + (",six==1.17.0" if n % 2 == 0 else ""))
        objs.append(inspect_obj(n, [f"img-{n:03d}:latest"], labels, minutes=n))
    return objs


def register_discovery(fp: Any, objs: list[dict[str, Any]], binary: str = "docker", prefix: str = "") -> list[str]:
    """The two calls discovery makes: the label-filtered listing, then one inspect of every ID."""
    ids = [str(o["Id"]).removeprefix("sha256:") for o in objs]
    listing = [binary, "images", "-q", "--no-trunc", "--filter", "label=org.isol8.runtime=python"]
    fp.register(listing, stdout="".join(f"sha256:{i}\n" for i in ids))
    inspect = [binary, "image", "inspect", *(prefix + i for i in ids)]
    fp.register(inspect, stdout=json.dumps(objs, indent=4))
    return inspect


def engine(dialect: Any = DOCKER) -> EngineBackend:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"discovery slept {seconds}s")

    return EngineBackend(dialect, sleep=no_sleep)


@pytest.fixture(autouse=True)
def empty_label_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test starts with no cached labels (discovery caches them per image ID under XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_warm_cache_makes_discovery_one_listing_call(fp: Any, empty_label_cache: Path) -> None:
    objs = many_images(300)
    inspect = register_discovery(fp, objs)
    ids = [str(o["Id"]).removeprefix("sha256:") for o in objs]
    fp.register(LIST_PYTHON, stdout="".join(f"sha256:{i}\n" for i in ids))
    cold = candidates(engine(), PYTHON)
    warm = candidates(engine(), PYTHON)
    assert fp.call_count(LIST_PYTHON) == 2
    assert fp.call_count(inspect) == 1  # the second call read every label from the cache
    assert [c.ref for c in warm] == [c.ref for c in cold]
    assert (empty_label_cache / "isol8" / "labels-docker-python.json").is_file()


@pytest.mark.parametrize("count", [1, 2, 30, 300])
def test_candidates_makes_two_engine_calls_however_many_images(fp: Any, count: int) -> None:
    objs = many_images(count)
    inspect = register_discovery(fp, objs)

    found = candidates(engine(), PYTHON)

    assert len(fp.calls) == 2
    assert fp.call_count(LIST_PYTHON) == 1
    assert fp.call_count(inspect) == 1
    expected = [f"img-{n:03d}:latest" for n in range(count) if n % 7 and n % 11]
    assert [c.ref for c in found] == expected


def test_resolve_over_300_images_is_two_calls_and_finds_the_exact_image(fp: Any) -> None:
    register_discovery(fp, many_images(300))

    r = resolve(engine(), PYTHON, want("six==1.17.0", "P150"), base=BASE)

    assert (r.image, r.match, r.install) == ("img-150:latest", "exact", ())
    assert len(fp.calls) == 2


def test_resolve_over_300_images_picks_the_newest_superset(fp: Any) -> None:
    register_discovery(fp, many_images(300))

    r = resolve(engine(), PYTHON, want("six"), base=BASE)

    # every even, non-base, non-foreign image has six plus one package: the newest of those wins
    assert (r.image, r.match, r.install) == ("img-298:latest", "superset", ())
    assert len(fp.calls) == 2


def test_resolve_over_300_images_installs_what_no_image_has(fp: Any) -> None:
    register_discovery(fp, many_images(300))

    r = resolve(engine(), PYTHON, want("p001", "numpy"), base=BASE)

    assert (r.image, r.match, texts(r.install)) == ("img-001:latest", "partial", ["numpy"])
    assert len(fp.calls) == 2


def test_resolve_with_no_isol8_images_is_one_call_and_the_base(fp: Any) -> None:
    fp.register(LIST_PYTHON, stdout="")

    r = resolve(engine(), PYTHON, want("six"), base=BASE)

    assert (r.image, r.match, texts(r.install)) == (BASE, "base", ["six"])
    assert len(fp.calls) == 1


def test_resolve_with_nothing_requested_asks_the_engine_nothing(fp: Any) -> None:
    r = resolve(engine(), PYTHON, (), base=BASE)

    assert (r.image, r.match, r.install) == (BASE, "base", ())
    assert len(fp.calls) == 0


def test_candidates_on_podman_inspects_the_listed_ids_as_they_are(fp: Any) -> None:
    """`podman image inspect localhost/<id>` says 'image not known': IDs must not get the local prefix."""
    objs = [inspect_obj(1, ["localhost/my-py:v1"], python_labels("six", "six==1.17.0"))]
    register_discovery(fp, objs, binary="podman")

    found = candidates(engine(PODMAN), PYTHON)

    assert [c.ref for c in found] == ["localhost/my-py:v1"]
    assert len(fp.calls) == 2


# ---- resolve(image=REF): no discovery, one inspect ----------------------------------------------


@pytest.mark.parametrize(
    ("labels", "requested", "install", "reason"),
    [
        (python_labels("six", "six==1.17.0"), ["six", "numpy"], ["numpy"], "--image my-py:v1; numpy still to install"),
        (python_labels("numpy,six", "numpy==2.1.3,six==1.17.0"), ["six", "numpy"], [], "has everything requested"),
        (python_labels("six", "six==1.17.0"), ["six==1.16.0"], ["six==1.16.0"], "six==1.16.0 still to install"),
        (python_labels(None), ["six", "numpy"], ["numpy", "six"], "numpy, six still to install"),
        ({}, ["six"], ["six"], "six still to install"),
        (python_labels("$(id)", "six==1.17.0"), ["six"], ["six"], "six still to install"),
    ],
    ids=["lacks-one", "has-all", "wrong-version", "base-image", "no-labels", "foreign-label"],
)
def test_resolve_with_an_image_makes_one_inspect_and_returns_what_it_lacks(
    fp: Any, labels: dict[str, str], requested: list[str], install: list[str], reason: str
) -> None:
    argv = ["docker", "image", "inspect", "my-py:v1"]
    fp.register(argv, stdout=json.dumps([inspect_obj(1, ["my-py:v1"], labels)]))

    r = resolve(engine(), PYTHON, want(*requested), base=BASE, image="my-py:v1")

    assert (r.image, r.match, texts(r.install)) == ("my-py:v1", "image", install)
    assert reason in r.reason
    assert fp.call_count(argv) == 1
    assert len(fp.calls) == 1


def test_resolve_with_a_missing_image_is_a_usage_error(fp: Any) -> None:
    argv = ["docker", "image", "inspect", "isol8:fixture-missing"]
    codes = json.loads((DATA / "docker" / "exit-codes.json").read_text())
    fp.register(
        argv,
        stdout=(DATA / "docker" / "missing-image.stdout").read_text(),
        stderr=(DATA / "docker" / "missing-image.stderr").read_text(),
        returncode=codes["missing-image"],
    )

    with pytest.raises(UsageError, match="image not found: isol8:fixture-missing"):
        resolve(engine(), PYTHON, want("six"), base=BASE, image="isol8:fixture-missing")
    assert len(fp.calls) == 1


def test_resolve_with_an_image_on_podman_inspects_the_local_name(fp: Any) -> None:
    argv = ["podman", "image", "inspect", "localhost/my-py:v1"]
    fp.register(argv, stdout=json.dumps([inspect_obj(1, ["localhost/my-py:v1"], python_labels("six"))]))

    r = resolve(engine(PODMAN), PYTHON, want("six"), base=BASE, image="my-py:v1")

    assert (r.image, r.install) == ("my-py:v1", ())
    assert len(fp.calls) == 1
