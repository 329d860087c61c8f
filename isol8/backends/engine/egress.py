"""A filtered run's way out on docker/podman: the egress proxy, and the relay whose network the sandbox joins.

    sandbox (--network container:<relay>: loopback, nothing else)
      -> 127.0.0.1:3128, the relay (socat, --network none)
      -> a unix socket in a volume that only the relay and the proxy mount
      -> the proxy (socat, then squid, on the engine's default network) -> the allowed hosts

An engine's internal network would not do: docker's routes to the host itself, and podman's
gateway is the host, so a sandbox on one reaches every service the host listens with. A network
namespace with loopback alone has no route, no gateway, no DNS and no IPv6 to anywhere.

All three (volume, proxy, relay) are named after the sandbox, labelled like every container of
isol8's (cleanup, the reaper and a server's own sweep find them) and removed when the run ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from isol8 import labels as L
from isol8.backends import reaper
from isol8.backends.engine import argv as A
from isol8.core.egress import MAX_LOG_ENTRIES, PROXY_IMAGE, Decision, Egress, parse_log, squid_config
from isol8.errors import EngineError, ImageMissing, ImageNotFound, RunFailed
from isol8.log import get_logger
from isol8.process import StreamingProcess

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.engine.backend import EngineBackend

log = get_logger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
QUIET_S = 0.05
_LINE_MAX = 65536


class _Attached:
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


class EgressProxy:
    """The proxy and relay of one filtered sandbox: start() before it runs, close() once it is gone."""

    def __init__(self, backend: EngineBackend, sandbox: str, egress: Egress, labels: Mapping[str, str]) -> None:
        self.backend = backend
        self.egress = egress
        self.proxy, self.relay, self.volume = f"{sandbox}-proxy", f"{sandbox}-relay", f"{sandbox}-egress"
        kept = {k: v for k, v in labels.items() if k not in (L.RUNTIME, L.RUN_ID)}
        self.labels = {**kept, L.EGRESS_OF: sandbox, **reaper.owner_label()}
        self.decisions: list[Decision] = []
        self.dropped = 0
        self.unparsed = 0  # lines of the proxy's log that are no decision: none are expected
        self._proxy: _Attached | None = None
        self._relay: _Attached | None = None

    def start(self) -> str:
        """Start both; the --network value of the sandbox that goes out through them."""
        d = self.backend.dialect
        for name in (self.proxy, self.relay, self.volume):
            reaper.watch(d, name)
        image = self.backend.local_image(PROXY_IMAGE)
        cwd = self.backend.client_cwd()  # podman's conmon drops an `oom` file in it (Dialect.private_cwd)
        try:
            self.backend.call(A.volume_create_argv(d, name=self.volume, labels=self._labels(self.volume)))
            # both at once: the relay opens the proxy's socket only when a connection comes
            self._proxy = _Attached(
                A.proxy_argv(
                    d,
                    name=self.proxy,
                    image=image,
                    labels=self._labels(self.proxy),
                    volume=self.volume,
                    hosts=self.egress.hosts,
                ),
                stdin=[squid_config(self.egress).encode()],
                marker="Accepting HTTP Socket connections",
                on_line=self._logged,
                verbose=True,
                cwd=cwd,
            )
            self._relay = _Attached(
                A.relay_argv(d, name=self.relay, image=image, labels=self._labels(self.relay), volume=self.volume),
                stdin=None,
                marker="listening on",
                on_line=self._logged,
                verbose=False,
                cwd=cwd,
            )
            self._ready(self._proxy)
            self._ready(self._relay)
        except BaseException:
            self.close()
            raise
        return f"container:{self.relay}"

    def _labels(self, name: str) -> dict[str, str]:
        return {**L.run_labels(name), **self.labels}

    def _ready(self, attached: _Attached) -> None:
        if attached.ready.wait(START_TIMEOUT_S) and not attached.ended:
            return
        attached.kill()
        argv, stderr, code = list(attached.proc.argv), "\n".join(attached.tail), attached.proc.poll()
        error = self.backend.classify(argv, code, "", stderr)
        if isinstance(error, ImageNotFound):
            raise ImageMissing(
                argv,
                code,
                "",
                stderr,
                message=f"image {PROXY_IMAGE} not found: a filtered run needs it",
                hint="build it with `isol8 setup --runtime proxy`",
            )
        problem = "did not start" if code is not None else f"did not start within {START_TIMEOUT_S:g}s"
        raise RunFailed(argv, code, "", stderr, message=f"the egress proxy {problem}: {error.message}")

    def _logged(self, line: str) -> None:
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

    def close(self) -> tuple[Decision, ...]:
        """Remove the relay, the proxy and the volume (once the sandbox is gone); the proxy's log.

        squid logs a request when it ends, which the sandbox's end makes happen for every one still
        open: the log is read until it has been quiet for QUIET_S before the proxy goes. (squid's own
        orderly shutdown would take two seconds.)"""
        d = self.backend.dialect
        if self._proxy is not None:
            self._proxy.quiet(QUIET_S, STOP_TIMEOUT_S)
        self._quietly(lambda: self.backend.remove_containers([self.relay, self.proxy]))
        for client in (self._relay, self._proxy):
            if client is not None and not client.stop(STOP_TIMEOUT_S):
                client.kill()
        self._quietly(lambda: self.backend.call(A.volume_rm_argv(d, [self.volume]), idempotent=True))
        for name in (self.proxy, self.relay, self.volume):
            reaper.release(name)
        if self.dropped:
            log.warning("egress: %d more decisions were not kept (at most %d)", self.dropped, MAX_LOG_ENTRIES)
        if self.unparsed:
            log.warning("egress: %d lines of the proxy's log were not understood (--debug shows them)", self.unparsed)
        return tuple(self.decisions)

    @staticmethod
    def _quietly(step: Callable[[], object]) -> None:
        try:
            step()
        except EngineError as exc:
            log.debug("egress cleanup: %s", exc)


class FilteredRun:
    """A filtered sandbox's process; leaving the block removes the sandbox, then its egress."""

    def __init__(self, backend: EngineBackend, sandbox: str, proc: StreamingProcess, egress: EgressProxy) -> None:
        self.backend = backend
        self.sandbox = sandbox
        self.proc = proc
        self.egress = egress
        self.argv = proc.argv
        self.network_log: tuple[Decision, ...] = ()
        self.killed = False

    def chunks(self, deadline: float | Callable[[], float] | None = None) -> Iterator[tuple[str, bytes]]:
        return self.proc.chunks(deadline)

    def wait(self, timeout: float | None = None) -> int | None:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.killed = True
        self.proc.kill()

    def __enter__(self) -> FilteredRun:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            # a client of `run --rm` that ended by itself has removed its container; any other
            # way (killed, or the block left early) it may still be there: removed before its
            # relay, whose network it joined (podman refuses otherwise) and whose log it ends
            ended = not self.killed and self.proc.poll() is not None
            self.proc.__exit__(*exc)
            if not ended:
                EgressProxy._quietly(lambda: self.backend.remove_containers([self.sandbox]))
        finally:
            self.network_log = self.egress.close()
