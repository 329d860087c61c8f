"""isol8.units (the one limits parser), isol8.reference (image names) and full-match name rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from isol8 import units
from isol8.backends.engine.dialect import PODMAN
from isol8.core import payload
from isol8.core.sandbox import SandboxPolicy, valid_env_name
from isol8.ecosystems import parse_spec, screen
from isol8.errors import UsageError
from isol8.reference import check_image_name
from isol8.runtimes import RUNTIMES
from isol8.units import GIB, KIB, MIB, TIB, InvalidLimit

Parse = Callable[[object], Any]

# Values that mean "no limit" to some engine, or nothing at all: refused by every limit parser.
NEVER = [
    0, -1, "0", "-1", "nan", "inf", "-inf", "1e400", "1e3", float("nan"), float("inf"), float("-inf"), 1e400,
    True, False, None, "", "  ", "\n", "0x10", "1_000", "+5", "５", "10**9", [], {}, "1 2", "10\n\n10",
    10**400, "9" * 5000, -0.0, "1\u212a", "1\u017f", "1m\u017f",
]  # fmt: skip

PARSERS: dict[str, Parse] = {
    "memory": units.memory,
    "tmpfs_size": units.tmpfs_size,
    "output_size": units.output_size,
    "cpus": units.cpus,
    "pids": units.pids,
    "duration_ms": units.duration_ms,
}

# The smallest and largest accepted values, and the neighbours just outside them.
VALID = {
    "memory": [("6m", 6 * MIB), (6 * MIB, 6 * MIB), ("512m", 512 * MIB), ("1g", GIB), ("0.5g", 512 * MIB),
               (" 8 MiB ", 8 * MIB), ("1t", TIB), (float(GIB), GIB), ("1.5g", 1536 * MIB)],
    "tmpfs_size": [("1m", MIB), ("1024k", MIB), (MIB, MIB), ("256M", 256 * MIB), ("1t", TIB)],
    "output_size": [(1, 1), ("1", 1), ("10b", 10), ("1.5k", 1536), ("1m", MIB), ("1g", GIB)],
    "cpus": [(0.01, 0.01), ("0.01", 0.01), ("0.5", 0.5), (".5", 0.5), (1, 1.0), ("2", 2.0), (1024, 1024.0)],
    "pids": [(1, 1), ("1", 1), (64, 64), ("4096", 4096), (64.0, 64), (4_194_304, 4_194_304)],
    "duration_ms": [(1, 1), ("1ms", 1), ("500ms", 500), ("30s", 30_000), ("2M", 120_000), ("1h", 3_600_000),
                    ("1500", 1500), (2.6, 3), ("1.5s", 1500), ("24h", 86_400_000), (" 10 s ", 10_000)],
}  # fmt: skip
INVALID = {
    "memory": ["0.5", "1.5", 6 * MIB - 1, "5m", "0.005g", "1023k", "1025g", "2t", TIB + 1, "0.1k", "lots", "1mm",
               "12x", "m", "1.2.3k", "1 0m", "-1m", "512m\n", "512\nm", "\t512m"],
    "tmpfs_size": ["0.5", "1023k", MIB - 1, "0.5m", "1025g", "0.1k", "0m", "1e6"],
    "output_size": ["0.5", "1.3", "0.1k", "1025m", GIB + 1, "2g", 1.5],
    "cpus": ["0", "0.009", 0.001, "1025", 1024.5, "1e1", "1,5", "one", "0.0"],
    "pids": ["1.5", 1.5, "0", "-5", 4_194_305, "1e3", "1k", "10.0", "one"],
    "duration_ms": ["0.5", "0.4", 0.4, "0s", "0ms", "-1s", "-500", "25h", 86_400_001, "5d", "10 sec", "1m30s", "s"],
}  # fmt: skip


@pytest.mark.parametrize("value", NEVER, ids=repr)
@pytest.mark.parametrize("kind", PARSERS)
def test_no_limit_value_is_ever_accepted(kind: str, value: object) -> None:
    with pytest.raises(InvalidLimit):
        PARSERS[kind](value)


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in INVALID.items() for v in vs], ids=repr)
def test_invalid_values(kind: str, value: object) -> None:
    with pytest.raises(InvalidLimit) as caught:
        PARSERS[kind](value)
    assert repr(value)[:40] in str(caught.value) or len(repr(value)) > 40


@pytest.mark.parametrize(("kind", "value", "expected"), [(k, v, e) for k, vs in VALID.items() for v, e in vs], ids=repr)
def test_valid_values(kind: str, value: object, expected: object) -> None:
    parsed = PARSERS[kind](value)
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_the_tmpfs_minimum_is_one_mebibyte_and_memory_six() -> None:
    assert units.tmpfs_size("1024k") == MIB
    with pytest.raises(InvalidLimit):
        units.memory("5m")
    assert units.memory("6m") == 6 * MIB


@pytest.mark.parametrize(
    ("parse", "value", "fragments"),
    [
        (units.memory, "0.5", ["not a whole number of bytes", "from 6m to 1t", "512m"]),
        (units.memory, "1k", ["'1k' is out of range", "from 6m to 1t"]),
        (units.tmpfs_size, "lots", ["not a size: 'lots'", "from 1m"]),
        (units.output_size, 0, ["out of range", "from 1 to 1g"]),
        (units.cpus, "nan", ["not a CPU count: 'nan'", "0.01 to 1024"]),
        (units.cpus, 0, ["out of range", "0.01 to 1024"]),
        (units.pids, "1.5", ["not a process count: '1.5'", "whole number from 1"]),
        (units.pids, True, ["not a process count: True"]),
        (units.duration_ms, "inf", ["not a duration: 'inf'", "1ms to 24h"]),
    ],
)
def test_messages_say_what_is_accepted(parse: Parse, value: object, fragments: list[str]) -> None:
    with pytest.raises(InvalidLimit) as caught:
        parse(value)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 120, message
    for fragment in fragments:
        assert fragment in message, message


def test_invalid_limit_is_a_value_error() -> None:
    assert issubclass(InvalidLimit, ValueError)


@pytest.mark.parametrize(
    ("n", "text"),
    [(512 * MIB, "512m"), (GIB, "1g"), (1536, "1.5k"), (6 * MIB, "6m"), (1, "1"), (1000, "1000"), (TIB, "1t"),
     (1536 * MIB, "1.5g"), (MIB + 1, str(MIB + 1)), (256 * KIB, "256k")],
)  # fmt: skip
def test_format_size_reads_back(n: int, text: str) -> None:
    assert units.format_size(n) == text
    assert units.parse_size(text) == n


# ---- SandboxPolicy: no library user can build an unlimited sandbox ----------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory": "0.5"}, {"memory": 0}, {"memory": -1}, {"memory": MIB}, {"sandbox_size": "0.5"},
        {"sandbox_size": 0}, {"tmp_size": "0.5"}, {"tmp_size": -1}, {"cpus": float("nan")}, {"cpus": float("inf")},
        {"cpus": 0}, {"cpus": True}, {"pids_limit": 0}, {"pids_limit": -1}, {"pids_limit": True},
        {"pids_limit": 1.5},
    ],
    ids=repr,
)  # fmt: skip
def test_policy_refuses_unlimited_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidLimit, match=next(iter(kwargs))):
        SandboxPolicy(**kwargs)


def test_policy_holds_parsed_values() -> None:
    policy = SandboxPolicy(memory="1g", cpus="0.5", pids_limit="8", sandbox_size="1m", tmp_size=2 * MIB)  # type: ignore[arg-type]
    assert (policy.memory, policy.cpus, policy.pids_limit, policy.sandbox_size, policy.tmp_size) == (
        GIB, 0.5, 8, MIB, 2 * MIB,
    )  # fmt: skip
    assert policy == SandboxPolicy(memory=GIB, cpus=0.5, pids_limit=8, sandbox_size=MIB, tmp_size=2 * MIB)
    assert SandboxPolicy() == SandboxPolicy(memory=512 * MIB, sandbox_size=512 * MIB, tmp_size=256 * MIB)


# ---- image names (build --tag, prebuiltImages[].tag) -----------------------------------------------


@pytest.mark.parametrize(
    "ref",
    ["my-py", "my-py:1.0", "a/b/c", "a__b", "a--b", "a.b_c", "x:Latest_1.-", "localhost/x", "localhost:5000/x/y:v1",
     "my.host:443/team/app", "Host.Internal/app", "a" * 255, "a:" + "t" * 128, "0", "x:_"],
)  # fmt: skip
def test_valid_image_names(ref: str) -> None:
    assert check_image_name(ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["x//y", "a" * 300, "a" * 256, "x\n", "x:tag\n", "x\n:tag", "-x", "x/-y", "Upper", "Foo/bar", "my/Repo", "x:",
     ":t", "", "x:" + "t" * 129, "x:-t", "x:.t", "x..y", "x___y", "x.", "/x", "x/", "x y", "x@sha256:" + "0" * 64,
     "my.host:port/x", "-h.x/y", "host:1/-x", "x:a:b", "\nx", "x\t", "ünï"],
    ids=repr,
)  # fmt: skip
def test_invalid_image_names(ref: str) -> None:
    with pytest.raises(ValueError, match="not a valid image name"):
        check_image_name(ref)


# ---- full-match validation: a trailing newline is never part of a valid name ------------------------


@pytest.mark.parametrize("name", ["PATH", "_x", "A1"])
def test_env_names_full_match(name: str) -> None:
    assert valid_env_name(name)
    assert not valid_env_name(name + "\n")
    assert not valid_env_name("\n" + name)


def test_script_name_with_a_trailing_newline_becomes_main() -> None:
    assert payload.safe_code_name("job.py", ".py") == "job.py"
    assert payload.safe_code_name("job.py\n", ".py") == "main.py"


def test_session_ids_full_match() -> None:
    pytest.importorskip("starlette")
    from isol8.errors import RequestError
    from isol8.frontends.server.session import check_id

    assert check_id("abc-1") == "abc-1"
    with pytest.raises(RequestError) as caught:
        check_id("abc\n")
    assert caught.value.status == 400


def test_image_ids_full_match() -> None:
    image_id = "sha256:" + "a" * 64
    assert PODMAN.local_image(image_id) == image_id
    assert PODMAN.local_image(image_id + "\n") == "localhost/" + image_id + "\n"


@pytest.mark.parametrize(("runtime", "spec"), [("python", "numpy"), ("node", "lodash@4"), ("bash", "jq"),
                                               ("deno", "jsr:@std/path")])  # fmt: skip
def test_package_specs_full_match(runtime: str, spec: str) -> None:
    """parse_spec strips the spec it is given, so only its screen sees a trailing newline."""
    assert parse_spec(RUNTIMES[runtime], spec + "\n") == parse_spec(RUNTIMES[runtime], spec)
    screen([spec])
    with pytest.raises(UsageError):
        screen([spec + "\n"])


@pytest.mark.parametrize("field", ["env", "secrets"])
def test_a_request_refuses_an_env_name_ending_in_a_newline(field: str) -> None:
    from isol8 import runtimes
    from isol8.core.runner import RunRequest

    RunRequest(runtime=runtimes.get("bash"), cmd="true", **{field: {"OK": "1"}}).check()
    with pytest.raises(UsageError, match="not a valid environment variable name"):
        RunRequest(runtime=runtimes.get("bash"), cmd="true", **{field: {"OK\n": "1"}}).check()


@pytest.mark.parametrize(("field", "value"), [("timeout_ms", 0), ("timeout_ms", -1), ("max_output", 0)])
def test_a_request_refuses_limits_meaning_unlimited(field: str, value: int) -> None:
    from isol8 import runtimes
    from isol8.core.runner import RunRequest

    with pytest.raises(UsageError, match=field):
        RunRequest(runtime=runtimes.get("bash"), cmd="true", **{field: value}).check()  # type: ignore[arg-type]


def test_the_package_exports_the_units_parser() -> None:
    import isol8

    assert isol8.InvalidLimit is InvalidLimit
    assert isol8.units.memory("6m") == 6 * MIB


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"V": "x" * (128 * 1024)}, "the value of V is too long"),
        ({f"V{i}": "" for i in range(4097)}, "4097 variables"),
        ({f"V{i}": "x" * 100_000 for i in range(3)}, "the environment is too large"),
    ],
)
def test_a_request_refuses_an_environment_an_exec_could_not_take(env: dict[str, str], message: str) -> None:
    """Too large, the program's exec fails after isol8 said it started (exit 126, not 125); too many
    variables, the wrapper spends seconds reading them before the time limit even counts."""
    from isol8 import runtimes
    from isol8.core.request import ENV_BYTES_MAX, RunRequest

    for field in ("env", "secrets"):
        with pytest.raises(UsageError, match=message):
            RunRequest(runtime=runtimes.get("bash"), cmd="true", **{field: env}).check()
    at_most = {"V": "x" * (ENV_BYTES_MAX // 2 - 10), "W": "y" * (ENV_BYTES_MAX // 2 - 10)}
    RunRequest(runtime=runtimes.get("bash"), cmd="true", env=at_most).check()


def test_a_policy_copy_is_checked_like_a_new_one() -> None:
    policy = SandboxPolicy(memory="128m")
    assert policy._replace(cpus="0.5") == SandboxPolicy(memory="128m", cpus=0.5)
    for change in ({"memory": 0}, {"pids_limit": -1}, {"network": "bridge"}, {"seccomp_profile": "unconfined"}):
        with pytest.raises(ValueError):
            policy._replace(**change)


def test_a_requests_default_mappings_are_read_only() -> None:
    """A NamedTuple's defaults are shared by every request: none of them can be changed in place."""
    from isol8.core.runner import RunRequest

    request = RunRequest(runtime=RUNTIMES["bash"], cmd="true")
    for mapping in (request.env, request.secrets, request.labels):
        with pytest.raises(TypeError):
            mapping["X"] = "1"  # type: ignore[index]
    with pytest.raises(UsageError, match="exactly one"):
        RunRequest(runtime=RUNTIMES["bash"]).check()


# ---- the run path's checks without a regular expression agree with the patterns they stand for -----

_TRICKY = ["", "a", "A1", "_", "_x", "1a", "a-b", "a.b", "a+b", ".a", "-a", "+a", "a\n", "\na", "a b", "é",
           "ǅ", "\u0660", "a\u0660", "\uff21", "x" * 200, "x" * 201, "x" * 202, "a\x00", "ab.py", "ſ", "K",
           "a\u200d"]  # fmt: skip


def test_every_ascii_name_of_up_to_two_characters_is_judged_as_the_patterns_say() -> None:
    ascii_chars = [chr(c) for c in range(128)]
    for name in ["", *ascii_chars, *(a + b for a in ascii_chars for b in ascii_chars)]:
        assert valid_env_name(name) == bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)), repr(name)
        plain = bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}", name))
        assert payload.safe_code_name(name, ".py") == (name if plain else "main.py"), repr(name)


def test_every_size_the_plain_reading_takes_is_what_the_pattern_says() -> None:
    """units._plain_size (digits and one unit letter, no compile) against _SIZE, on every string of
    up to three characters from size-like ones, and on the edges of its 18 digits."""
    chars = "0129kKmMgGtTbBiI. x\u0660\u017f\u212a"
    texts = [
        "",
        *chars,
        *(a + b for a in chars for b in chars),
        *(a + b + c for a in chars for b in chars for c in chars),
    ]
    texts += ["9" * 18, "9" * 18 + "t", "9" * 19, "9" * 19 + "k", "0" * 18 + "1m", "512m", "1048576"]
    taken = 0
    for text in texts:
        plain = units._plain_size(text)
        if plain is None:
            continue
        taken += 1
        match = re.fullmatch(units._SIZE, text.strip(" "), units._FLAGS)
        assert match, repr(text)
        assert plain == units._decimal(match.group(1), units._SIZE_UNITS[match.group(2).lower()]), repr(text)
    assert taken > 200  # the plain forms among them


@pytest.mark.parametrize("name", _TRICKY, ids=repr)
def test_env_names_are_what_the_pattern_says(name: str) -> None:
    assert valid_env_name(name) == bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name))


@pytest.mark.parametrize("name", _TRICKY, ids=repr)
def test_plain_code_names_are_what_the_pattern_says(name: str) -> None:
    plain = bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}", name))
    assert payload.safe_code_name(name, ".py") == (name if plain else "main.py")


@pytest.mark.parametrize(
    "ref",
    ["a" * 64, "sha256:" + "0" * 64, "sha256:" + "a" * 63, "a" * 65, "A" * 64, "g" * 64, "sha256:sha256:" + "a" * 64,
     "sha512:" + "a" * 64, "sha256:", "", "a" * 63 + "\n", " " + "a" * 63, "\u0660" * 64, "python", "ab" * 32],
    ids=repr,
)  # fmt: skip
def test_image_ids_are_what_the_pattern_says(ref: str) -> None:
    is_id = bool(re.fullmatch(r"(sha256:)?[0-9a-f]{64}", ref))
    assert (PODMAN.local_image(ref) == ref) == is_id
