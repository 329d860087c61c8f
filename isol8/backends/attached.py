"""What both backends' egress proxies share: the proxy's client process, attached and read line by
line (its stdout the access log, its stderr watched for the line that says it is ready), and the
log's decisions kept (isol8.core.egress.parse_log). backends/engine/egress.py runs squid in a
container, backends/kubernetes/egress.py in a Pod.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from isol8.core.egress import MAX_LOG_ENTRIES, Decision, parse_log
from isol8.errors import EngineError
from isol8.log import get_logger
from isol8.process import StreamingProcess

log = get_logger(__name__)

QUIET_S = 0.05
_LINE_MAX = 65536


class Attached:
    """An egress container run attached: its output read line by line in a thread, ready once
    its stderr shows marker."""

    def __init__(
        self,
        argv: list[str],
        *,
        stdin: Iterable[bytes] | None,
        marker: str,
        on_line: Callable[[str], None],
        verbose: bool,
        cwd: str | None,
    ) -> None:
        self.marker = marker
        self.verbose = verbose
        self.on_line = on_line
        self.ready = threading.Event()
        self.ended = False
        self.last_line = time.monotonic()
        self.tail: deque[str] = deque(maxlen=20)
        self.proc = StreamingProcess(argv, stdin=stdin, cwd=cwd)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        pending = {"stdout": b"", "stderr": b""}
        try:
            for stream, data in self.proc.chunks():
                *lines, rest = (pending[stream] + data).split(b"\n")
                pending[stream] = rest if len(rest) <= _LINE_MAX else b""
                for line in lines:
                    self._line(stream, line.decode("utf-8", "replace"))
        finally:
            self.ended = True
            self.ready.set()

    def _line(self, stream: str, line: str) -> None:
        self.last_line = time.monotonic()
        if stream == "stdout":
            self.on_line(line)
            return
        self.tail.append(line)
        if self.verbose:
            log.debug("egress: %s", line)
        if self.marker in line:
            self.ready.set()

    def quiet(self, quiet_s: float, timeout: float) -> None:
        """Wait until nothing was printed for quiet_s (or it ended, or timeout)."""
        due = time.monotonic() + timeout
        while not self.ended and time.monotonic() < due:
            idle = time.monotonic() - self.last_line
            if idle >= quiet_s:
                return
            time.sleep(quiet_s - idle)

    def stop(self, timeout: float) -> bool:
        """Wait for the client to end (its container stopped); whether it did."""
        if self.proc.wait(timeout) is None:
            return False
        self.thread.join(timeout)
        self.proc.__exit__()
        return True

    def kill(self) -> None:
        self.proc.__exit__()
        self.thread.join(1)


class ProxyLog:
    """The decisions of one proxy's access log, as its lines come (at most MAX_LOG_ENTRIES)."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.dropped = 0
        self.unparsed = 0  # lines of the proxy's log that are no decision: none are expected

    def line(self, line: str) -> None:
        decision = parse_log(line)
        if decision is None:
            self.unparsed += 1
            log.debug("egress: not a decision: %r", line[:200])
            return
        log.debug("egress: %s %s %s", decision.verdict, decision.method, decision.target)
        if len(self.decisions) < MAX_LOG_ENTRIES:
            self.decisions.append(decision)
        else:
            self.dropped += 1

    def finish(self) -> tuple[Decision, ...]:
        """The decisions, once the proxy is gone; a warning for what was not kept or understood."""
        if self.dropped:
            log.warning("egress: %d more decisions were not kept (at most %d)", self.dropped, MAX_LOG_ENTRIES)
        if self.unparsed:
            log.warning("egress: %d lines of the proxy's log were not understood (--debug shows them)", self.unparsed)
        return tuple(self.decisions)


def quietly(step: Callable[[], object]) -> None:
    """A step of an egress's cleanup: its failure (the container or Pod already gone) is logged, not raised."""
    try:
        step()
    except EngineError as exc:
        log.debug("egress cleanup: %s", exc)
