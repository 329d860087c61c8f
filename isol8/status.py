"""Exit statuses of the isol8 command line."""

from __future__ import annotations


class ExitStatus:
    """Plain ints, as sys.exit and the shell take them: an IntEnum's creation would cost every run
    1.4M instructions (about 0.5 ms)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    ENGINE_UNAVAILABLE = 3
    TIMEOUT = 124
    ENGINE_FAILURE = 125
    SIGINT = 130
    SIGPIPE = 141  # standard output was closed early (`isol8 ... | head`)
    SIGTERM = 143
