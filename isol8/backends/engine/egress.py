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

from collections.abc import Callable, Iterator, Mapping

from isol8 import labels as L
from isol8.backends import reaper
from isol8.backends.attached import QUIET_S, Attached, ProxyLog, quietly
from isol8.backends.engine import argv as A
from isol8.core.egress import PROXY_IMAGE, Decision, Egress, squid_config
from isol8.errors import ImageMissing, ImageNotFound, RunFailed
from isol8.log import get_logger
from isol8.process import StreamingProcess

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.engine.backend import EngineBackend

log = get_logger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


class EgressProxy:
    """The proxy and relay of one filtered sandbox: start() before it runs, close() once it is gone."""

    def __init__(self, backend: EngineBackend, sandbox: str, egress: Egress, labels: Mapping[str, str]) -> None:
        self.backend = backend
        self.egress = egress
        self.proxy, self.relay, self.volume = f"{sandbox}-proxy", f"{sandbox}-relay", f"{sandbox}-egress"
        kept = {k: v for k, v in labels.items() if k not in (L.RUNTIME, L.RUN_ID)}
        self.labels = {**kept, L.EGRESS_OF: sandbox, **reaper.owner_label()}
        self.log = ProxyLog()
        self._proxy: Attached | None = None
        self._relay: Attached | None = None

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
            self._proxy = Attached(
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
                on_line=self.log.line,
                verbose=True,
                cwd=cwd,
            )
            self._relay = Attached(
                A.relay_argv(d, name=self.relay, image=image, labels=self._labels(self.relay), volume=self.volume),
                stdin=None,
                marker="listening on",
                on_line=self.log.line,
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

    def _ready(self, attached: Attached) -> None:
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

    def close(self) -> tuple[Decision, ...]:
        """Remove the relay, the proxy and the volume (once the sandbox is gone); the proxy's log.

        squid logs a request when it ends, which the sandbox's end makes happen for every one still
        open: the log is read until it has been quiet for QUIET_S before the proxy goes. (squid's own
        orderly shutdown would take two seconds.)"""
        d = self.backend.dialect
        if self._proxy is not None:
            self._proxy.quiet(QUIET_S, STOP_TIMEOUT_S)
        quietly(lambda: self.backend.remove_containers([self.relay, self.proxy]))
        for client in (self._relay, self._proxy):
            if client is not None and not client.stop(STOP_TIMEOUT_S):
                client.kill()
        quietly(lambda: self.backend.call(A.volume_rm_argv(d, [self.volume]), idempotent=True))
        for name in (self.proxy, self.relay, self.volume):
            reaper.release(name)
        return self.log.finish()


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
                quietly(lambda: self.backend.remove_containers([self.sandbox]))
        finally:
            self.network_log = self.egress.close()
