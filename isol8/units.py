"""The one strict parser of limits (sizes, CPUs, pids, durations) for flags, config, HTTP and SandboxPolicy.

Every value an engine reads as "unlimited" (0, -1, a fraction that rounds to 0 bytes, nan,
inf) is refused: there is no way, and no keyword, to ask for no limit.
"""

from __future__ import annotations

import re

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4
_SIZE_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": TIB}
_UNIT_LETTERS = frozenset("kmgtKMGT")  # ASCII alone: the Kelvin sign lowers to k
_DURATION_UNITS = {"": 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

MEMORY_MIN = 6 * MIB  # docker's own minimum; below it the engines refuse or misbehave
TMPFS_MIN = MIB
OUTPUT_MIN = 1
SIZE_MAX = TIB
OUTPUT_MAX = GIB  # kept in isol8's memory, per stream
CPU_MIN = (1, 100)  # exact numbers are (numerator, positive denominator): no fractions import on the run path
CPU_MAX = (1024, 1)
PIDS_MIN = 1
PIDS_MAX = 4_194_304  # the kernel's pid_max ceiling
DURATION_MIN_MS = 1
DURATION_MAX_MS = 86_400_000  # 24h

# Pattern texts, compiled on first use by re's own cache: importing this module compiles nothing.
_NUMBER = r"([0-9]{1,18}(?:\.[0-9]{1,18})?)"
_SIZE = _NUMBER + r" *([kmgt]?)(?:i?b)?"  # spaces only, never a newline
_CPUS = r"[0-9]{1,6}(?:\.[0-9]{1,9})?|\.[0-9]{1,9}"
_PIDS = r"[0-9]{1,10}"
_DURATION = _NUMBER + r" *(ms|s|m|h)?"
_FLAGS = re.IGNORECASE | re.ASCII


class InvalidLimit(ValueError):
    """A limit value that is malformed, out of range, or would mean "unlimited" to an engine."""


Exact = tuple[int, int]
_INF = float("inf")  # not math's: its extension module costs every run a quarter of a millisecond


def _number(value: object) -> Exact | None:
    """An exact int/float (never a bool, never nan/inf), or None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value, 1
    if isinstance(value, float) and -_INF < value < _INF:  # neither nan nor an infinity
        return value.as_integer_ratio()
    return None


def _decimal(text: str, scale: int = 1) -> Exact:
    """ "12.5" (digits, at most one point) times scale, exactly."""
    whole, _, part = text.partition(".")
    return (int(whole or "0") * 10 ** len(part) + int(part or "0")) * scale, 10 ** len(part)


def _within(x: Exact, low: Exact, high: Exact) -> bool:
    return low[0] * x[1] <= x[0] * low[1] and x[0] * high[1] <= high[0] * x[1]


def format_size(n: int) -> str:
    """Bytes for people, in the form parse_size reads back: 536870912 -> '512m', 1536 -> '1.5k'."""
    for suffix in ("t", "g", "m", "k"):
        unit = _SIZE_UNITS[suffix]
        if n >= unit and (n * 100) % unit == 0:
            text = f"{n / unit:.2f}".rstrip("0").rstrip(".")
            return text + suffix
    return str(n)


def format_duration(ms: int) -> str:
    """Milliseconds for people, in the form duration_ms reads back: 30000 -> '30s', 120000 -> '2m'."""
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def _plain_size(text: str) -> Exact | None:
    """ "512m", "64K", "1048576": ASCII digits and at most one unit letter (the defaults' form), read
    as _SIZE reads them without its compile (1.1M instructions of every run); None for the rest."""
    digits, unit = (text[:-1], text[-1].lower()) if text[-1:] in _UNIT_LETTERS else (text, "")
    if 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit():
        return int(digits) * _SIZE_UNITS[unit], 1
    return None


def parse_size(value: object, *, minimum: int = 1, maximum: int = SIZE_MAX) -> int:
    """Bytes from 512m, 1g, 1.5k, 64KiB, 1048576 or an integer (powers of 1024), within [minimum, maximum]."""
    accepted = f"a size from {format_size(minimum)} to {format_size(maximum)}, e.g. 512m, 1g, or bytes"
    exact = _number(value)
    if exact is None and isinstance(value, str):
        exact = _plain_size(value)
    if exact is None and isinstance(value, str):
        match = re.fullmatch(_SIZE, value.strip(" "), _FLAGS)
        if match:
            exact = _decimal(match.group(1), _SIZE_UNITS[match.group(2).lower()])
    if exact is None:
        raise InvalidLimit(f"not a size: {value!r} ({accepted})")
    if exact[0] % exact[1]:
        raise InvalidLimit(f"{value!r} is not a whole number of bytes ({accepted})")
    if not _within(exact, (minimum, 1), (maximum, 1)):
        raise InvalidLimit(f"{value!r} is out of range ({accepted})")
    return exact[0] // exact[1]


def memory(value: object) -> int:
    return parse_size(value, minimum=MEMORY_MIN)


def tmpfs_size(value: object) -> int:
    return parse_size(value, minimum=TMPFS_MIN)


def output_size(value: object) -> int:
    return parse_size(value, minimum=OUTPUT_MIN, maximum=OUTPUT_MAX)


def cpus(value: object) -> float:
    """Cores as a float from 0.5, 2, "1.5", within [0.01, 1024]; never nan, inf or 0."""
    accepted = f"a number of cores from {CPU_MIN[0] / CPU_MIN[1]:g} to {CPU_MAX[0] / CPU_MAX[1]:g}, e.g. 0.5 or 2"
    exact = _number(value)
    if exact is None and isinstance(value, str) and re.fullmatch(_CPUS, value.strip(" "), re.ASCII):
        exact = _decimal(value.strip(" "))
    if exact is None:
        raise InvalidLimit(f"not a CPU count: {value!r} ({accepted})")
    if not _within(exact, CPU_MIN, CPU_MAX):
        raise InvalidLimit(f"{value!r} is out of range ({accepted})")
    return exact[0] / exact[1]


def pids(value: object) -> int:
    """A process count: a whole number from 1 (never 0 or -1, which the engines read as no limit)."""
    accepted = f"a whole number from {PIDS_MIN} to {PIDS_MAX}"
    exact = _number(value)
    if exact is None and isinstance(value, str) and re.fullmatch(_PIDS, value.strip(" "), re.ASCII):
        exact = int(value.strip(" ")), 1
    if exact is None or exact[0] % exact[1]:
        raise InvalidLimit(f"not a process count: {value!r} ({accepted})")
    if not _within(exact, (PIDS_MIN, 1), (PIDS_MAX, 1)):
        raise InvalidLimit(f"{value!r} is out of range ({accepted})")
    return exact[0] // exact[1]


def duration_ms(value: object) -> int:
    """Milliseconds from 500ms, 30s, 2m, 1h, or a bare number of milliseconds; 1ms to 24h."""
    accepted = "a duration from 1ms to 24h: 500ms, 30s, 2m, or milliseconds"
    exact = _number(value)
    if exact is None and isinstance(value, str):
        match = re.fullmatch(_DURATION, value.strip(" "), _FLAGS)
        if match:
            exact = _decimal(match.group(1), _DURATION_UNITS[(match.group(2) or "").lower()])
    if exact is None:
        raise InvalidLimit(f"not a duration: {value!r} ({accepted})")
    if not _within(exact, (DURATION_MIN_MS, 1), (DURATION_MAX_MS, 1)):
        raise InvalidLimit(f"{value!r} is out of range ({accepted})")
    return (2 * exact[0] + exact[1]) // (2 * exact[1])  # to the nearest millisecond
