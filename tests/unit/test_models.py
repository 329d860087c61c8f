"""ImageInfo / ContainerInfo over real inspect JSON of both engines, and parse_time."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from isol8 import labels as L
from isol8.models import ContainerInfo, ImageInfo, parse_time

DATA = Path(__file__).resolve().parent.parent / "data"
ENGINES = ("docker", "podman")
IMAGE_REF = {"docker": "isol8:python", "podman": "localhost/isol8:python"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def load(engine: str, name: str) -> list[dict[str, Any]]:
    return json.loads((DATA / engine / name).read_text(encoding="utf-8"))


def recorded(name: str) -> list[object]:
    """One param per object of tests/data/<engine>/<name>, for both engines."""
    return [
        pytest.param(engine, obj, id=f"{engine}/{name}[{i}]")
        for engine in ENGINES
        for i, obj in enumerate(load(engine, name))
    ]


@pytest.mark.parametrize(("engine", "obj"), recorded("image-inspect.json"))
def test_image_from_inspect(engine: str, obj: dict[str, Any]) -> None:
    info = ImageInfo.from_inspect(obj)

    assert HEX64.match(info.id), info.id
    assert obj["Id"].endswith(info.id)
    assert IMAGE_REF[engine] in info.tags
    assert info.labels[L.MANAGED] == "true"
    assert info.labels[L.RUNTIME] == "python"
    assert info.labels == obj["Config"]["Labels"]
    assert info.size == obj["Size"] > 0
    assert info.created is not None
    assert info.created.tzinfo is not None
    assert info.created.isoformat()[:19] == obj["Created"][:19]


@pytest.mark.parametrize("engine", ENGINES)
def test_partial_inspect_output_holds_the_images_found(engine: str) -> None:
    found = [ImageInfo.from_inspect(obj) for obj in load(engine, "image-inspect-partial.json")]

    assert found == [ImageInfo.from_inspect(obj) for obj in load(engine, "image-inspect.json")]


@pytest.mark.parametrize(("engine", "obj"), recorded("image-inspect.json"))
def test_image_labels_come_from_config_labels(engine: str, obj: dict[str, Any]) -> None:
    obj = copy.deepcopy(obj)
    obj["Labels"] = {"top.level.only": "x"}  # podman repeats labels at top level; docker has none there
    obj["Config"]["Labels"] = {"org.isol8.managed": "true"}

    assert ImageInfo.from_inspect(obj).labels == {"org.isol8.managed": "true"}


@pytest.mark.parametrize(("engine", "obj"), recorded("image-inspect.json"))
@pytest.mark.parametrize("where", ["config-null", "config-missing"])
def test_null_labels_are_empty(engine: str, obj: dict[str, Any], where: str) -> None:
    obj = copy.deepcopy(obj)
    obj.pop("Labels", None)
    if where == "config-null":
        obj["Config"]["Labels"] = None  # docker's shape for an image without labels
    else:
        del obj["Config"]

    assert ImageInfo.from_inspect(obj).labels == {}


def test_image_from_inspect_tolerates_a_sparse_object() -> None:
    info = ImageInfo.from_inspect({"Id": "sha256:" + "a" * 64, "RepoTags": None, "Size": None, "Unknown": 1})

    assert info == ImageInfo(id="a" * 64, tags=(), labels={}, created=None, size=0)


@pytest.mark.parametrize(("engine", "obj"), recorded("container-inspect.json"))
def test_container_from_inspect(engine: str, obj: dict[str, Any]) -> None:
    info = ContainerInfo.from_inspect(obj)

    assert HEX64.match(info.id), info.id
    assert info.name.startswith("isol8-fixture-")
    assert info.labels[L.MANAGED] == "true"
    assert info.labels[L.RUN_ID] == "fixture"
    assert info.running is False
    assert info.exit_code == 3
    assert info.oom_killed is False
    assert info.image == IMAGE_REF[engine]


@pytest.mark.parametrize(("engine", "obj"), recorded("container-inspect.json"))
def test_container_null_labels_are_empty(engine: str, obj: dict[str, Any]) -> None:
    obj = copy.deepcopy(obj)
    obj["Config"]["Labels"] = None

    assert ContainerInfo.from_inspect(obj).labels == {}


def _at(*args: int, offset: timedelta = timedelta(0)) -> datetime:
    return datetime(*args, tzinfo=timezone(offset))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # docker: RFC 3339 in UTC with nanoseconds
        ("2026-11-26T05:59:45.223126107Z", _at(2026, 11, 26, 5, 59, 45, 223126)),
        ("2026-11-26T05:59:45.5Z", _at(2026, 11, 26, 5, 59, 45, 500000)),
        ("2026-11-26T05:59:45Z", _at(2026, 11, 26, 5, 59, 45)),
        ("0001-01-01T00:00:00Z", _at(1, 1, 1)),  # docker's zero time (never started)
        # podman: the local offset, with nanoseconds
        ("2024-05-01T10:00:00.123456789+02:00", _at(2024, 5, 1, 10, 0, 0, 123456, offset=timedelta(hours=2))),
        ("2024-05-01T10:00:00-07:00", _at(2024, 5, 1, 10, 0, 0, offset=timedelta(hours=-7))),
        # podman images / Go time.String(): "2006-01-02 15:04:05.999999999 -0700 MST"
        ("2026-11-26 05:50:46.554478008 +0000 UTC", _at(2026, 11, 26, 5, 50, 46, 554478)),
        ("2026-11-26 05:50:46.554478008 -0700 MST", _at(2026, 11, 26, 5, 50, 46, 554478, offset=timedelta(hours=-7))),
        ("2026-11-26 05:50:46 +0100 CET", _at(2026, 11, 26, 5, 50, 46, offset=timedelta(hours=1))),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)

    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == expected.utcoffset()


def test_parse_time_of_an_offset_is_the_same_instant_in_utc() -> None:
    assert parse_time("2024-05-01T10:00:00+02:00") == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_parse_time_without_zone_is_utc() -> None:
    assert parse_time("2024-05-01T10:00:00.000000001") == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", [None, "", "   ", "yesterday", "2024-13-45T00:00:00Z"])
def test_parse_time_of_nothing_or_garbage_is_none(text: str | None) -> None:
    assert parse_time(text) is None
