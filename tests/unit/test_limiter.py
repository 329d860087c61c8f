"""isol8.core.streams.Limiter on arbitrary bytes: it keeps bytes up to the limit and never halves a valid character."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isol8.core.streams import Limiter, _incomplete_utf8_tail


def _proper_prefixes_of_every_character() -> frozenset[bytes]:
    """Every 1- to 3-byte start of a valid UTF-8 encoding that is not the whole character: the oracle."""
    prefixes: set[bytes] = set()
    for code_point in range(0x80, 0x110000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        encoded = chr(code_point).encode()
        prefixes.update(encoded[:n] for n in range(1, len(encoded)))
    return frozenset(prefixes)


INCOMPLETE = _proper_prefixes_of_every_character()


def ends_in_an_incomplete_character(data: bytes) -> bool:
    """True when the last 1-3 bytes start a valid character that the data does not finish."""
    return any(data[-n:] in INCOMPLETE for n in range(1, min(3, len(data)) + 1))


def one_character(data: bytes) -> bool:
    try:
        return len(data.decode("utf-8")) == 1
    except UnicodeDecodeError:
        return False


def splits_a_character(data: bytes, at: int) -> bool:
    """True when a valid multi-byte character of data starts before `at` and ends after it."""
    starts = range(max(at - 3, 0), at)
    return any(one_character(data[start:end]) for start in starts for end in range(at + 1, at + 4))


def limit_chunks(limit: int, chunks: Sequence[bytes]) -> tuple[bytes, bool]:
    limiter = Limiter(limit)
    out = b"".join(limiter.feed(c) for c in chunks) + limiter.flush()
    return out, limiter.truncated


def chop(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def check_invariants(data: bytes, limit: int, chunks: Sequence[bytes]) -> None:
    out, truncated = limit_chunks(limit, chunks)
    assert data.startswith(out)
    assert len(out) <= limit
    assert truncated is (len(data) > limit)
    if not truncated:
        assert out == data
        return
    assert len(out) >= limit - 3
    # the cut never halves a valid character of the input (on its own, the output may end in an
    # invalid byte that looks like a lead byte: b"\xc2" * 5000 is 5000 invalid bytes, all kept)
    assert not splits_a_character(data, len(out)), (data, limit, chunks, out)
    if len(out) < limit:  # bytes were dropped only because the character they start goes on past the limit
        assert splits_a_character(data, limit), (data, limit, chunks, out)


# bytes that make UTF-8 interesting: ASCII, continuation bytes, every kind of lead and never-valid bytes
UTF8ISH = st.sampled_from(
    [0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
)
MIXED = st.one_of(
    st.binary(max_size=60),
    st.lists(UTF8ISH, max_size=60).map(bytes),
    st.text(max_size=25).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.one_of(st.text(max_size=4).map(str.encode), st.binary(max_size=3)), max_size=12).map(b"".join),
)


@settings(max_examples=1500, deadline=None)
@given(data=MIXED, limit=st.integers(0, 70), cuts=st.lists(st.integers(0, 80), max_size=8))
def test_random_bytes_random_chunks_random_limits(data: bytes, limit: int, cuts: list[int]) -> None:
    check_invariants(data, limit, chop(data, cuts))


@settings(max_examples=300, deadline=None)
@given(data=MIXED, limit=st.integers(0, 70))
def test_output_does_not_depend_on_chunking(data: bytes, limit: int) -> None:
    whole = limit_chunks(limit, [data])
    assert limit_chunks(limit, [data[i : i + 1] for i in range(len(data))]) == whole
    for cut in range(len(data) + 1):
        assert limit_chunks(limit, [data[:cut], data[cut:]]) == whole


@pytest.mark.parametrize("seed", range(20))
def test_seeded_random_bytes_of_every_value(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(0, 3000))
    limit = rng.randrange(0, 2000)
    cuts = [rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 40))]
    check_invariants(data, limit, chop(data, cuts))


@pytest.mark.parametrize(
    "data",
    [b"\x80" * 5000, b"\xff" * 5000, b"\xc0\xaf" * 2500, b"\x80\xed\xa0" * 1700, bytes(range(256)) * 20],
    ids=["continuation", "ff", "overlong", "surrogates", "every-byte"],
)
def test_invalid_utf8_keeps_bytes_up_to_the_limit(data: bytes) -> None:
    assert limit_chunks(1000, [data]) == (data[:1000], True)
    assert limit_chunks(1000, [data[i : i + 7] for i in range(0, len(data), 7)]) == (data[:1000], True)


@pytest.mark.parametrize(
    ("data", "held"),
    [
        (b"", 0),
        (b"a", 0),
        (b"\xc3", 1),  # lead of a 2-byte character
        (b"\xc3\xa9", 0),  # complete
        (b"\xe2\x82", 2),
        (b"\xe2", 1),
        (b"\xe2\x82\xac", 0),
        (b"\xf0\x9f\x98", 3),
        (b"\xf0\x9f\x98\x80", 0),
        (b"\x80", 0),  # a lone continuation byte is just a byte
        (b"\x80\x80\x80", 0),
        (b"\xc0", 0),  # never valid (overlong)
        (b"\xc1", 0),
        (b"\xf5", 0),  # above U+10FFFF
        (b"\xff", 0),
        (b"\xe0\x80", 0),  # overlong 3-byte form
        (b"\xe0\xa0", 2),
        (b"\xed\xa0", 0),  # a surrogate
        (b"\xed\x9f", 2),
        (b"\xf0\x80", 0),  # overlong 4-byte form
        (b"\xf4\x90", 0),  # above U+10FFFF
        (b"\xf4\x8f\xbf", 3),
        (b"\xc3\xc3", 1),  # the first is invalid (no continuation), the second may still be completed
        (b"a\xc3\xa9\xe2", 1),
        (b"\xe2\x82\x82\x82", 0),  # a complete character and a stray byte
    ],
)
def test_incomplete_utf8_tail_table(data: bytes, held: int) -> None:
    assert _incomplete_utf8_tail(data) == held
    assert ends_in_an_incomplete_character(data) is (held > 0)


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"ab\xe2\x82\xac", 3, b"ab"),  # the euro sign goes past the limit: dropped whole
        (b"ab\xe2\x82\xac", 4, b"ab"),
        (b"ab\xe2\x82\xac!", 5, b"ab\xe2\x82\xac"),
        (b"ab\xe2A", 3, b"ab\xe2"),  # \xe2 followed by A is an invalid byte, not a character: kept
        (b"ab\xe2\x82A", 3, b"ab\xe2"),
        (b"ab\xe2\x82A", 4, b"ab\xe2\x82"),
        (b"ab\xe2\x82", 3, b"ab\xe2"),  # the stream ends before the character is complete: not a character
        (b"\xc2" * 50, 10, b"\xc2" * 10),
        (b"\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 7, b"\xf0\x9f\x98\x80"),
        (b"\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 4, b"\xf0\x9f\x98\x80"),
        (b"\xed\xa0\x80", 2, b"\xed\xa0"),  # a surrogate is not a character
        (b"\xe0\x80\x80", 1, b"\xe0"),  # an overlong form is not one either
    ],
)
def test_cut_table(data: bytes, limit: int, expected: bytes) -> None:
    assert limit_chunks(limit, [data]) == (expected, True)
    assert limit_chunks(limit, [data[i : i + 1] for i in range(len(data))]) == (expected, True)


def test_a_valid_character_split_across_chunks_is_kept_whole_under_the_limit() -> None:
    limiter = Limiter(10)
    assert limiter.feed(b"a\xe2") == b"a"
    assert limiter.feed(b"\x82") == b""
    assert limiter.feed(b"\xacz") == b"\xe2\x82\xacz"
    assert limiter.flush() == b""


def test_an_incomplete_character_at_the_end_of_the_stream_is_passed_on() -> None:
    assert limit_chunks(10, [b"ab\xe2\x82"]) == (b"ab\xe2\x82", False)


def test_the_bytes_at_the_limit_wait_for_what_follows() -> None:
    limiter = Limiter(3)
    assert limiter.feed(b"ab\xe2\x82") == b"ab"  # \xe2 may start a character that goes past the limit
    assert limiter.truncated
    assert limiter.feed(b"\xac and more") == b""  # it did: dropped
    assert limiter.flush() == b""
    limiter = Limiter(3)
    assert limiter.feed(b"ab\xe2\x82") == b"ab"
    assert limiter.feed(b"") == b""
    assert limiter.feed(b"Z") == b"\xe2"  # it did not: an invalid byte, kept
    assert limiter.feed(b"\xac") == b""
    assert limiter.flush() == b""
