"""What a running server holds: its backend, config, key, warm pool, sessions and execution slots."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

from isol8 import labels as L
from isol8 import runtimes
from isol8.backends.base import Backend
from isol8.config import Config, PackageSettings
from isol8.core.plan import egress_for, sandbox_policy
from isol8.errors import RequestError
from isol8.frontends.server.pool import WarmPool
from isol8.frontends.server.sessions import Sessions


@dataclass
class ServerState:
    backend: Backend
    config: Config
    api_key: str | None
    packages: PackageSettings
    server_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        settings = self.config.server
        self.settings = settings
        self.slots = threading.BoundedSemaphore(settings.max_concurrent)
        run = self.config.run
        policy = sandbox_policy(run, self.config, egress_for(run.network, self.config))
        # a filtered run has a proxy of its own: no standby container can wait with one
        size = 0 if policy.egress is not None else settings.pool_size
        self.pool = WarmPool(self.backend, policy, size, {L.SERVER_ID: self.server_id})
        # a session's longest turn: the execution, its packages' install and their unpacking (each up to the
        # install timeout), and a margin; past it, another replica may take the turn
        lease_s = run.timeout_ms / 1000 + 2 * self.packages.install_timeout_s + 60
        self.sessions = Sessions(
            self.backend, self.server_id, settings.session_idle_s, fleet=settings.fleet, lease_s=lease_s
        )
        self.draining = threading.Event()  # set on SIGTERM: /health?ready=1 answers 503 from then on

    def warm_pools(self) -> None:
        """A pool per runtime base image: executions with the default limits exec into one."""
        for runtime in runtimes.RUNTIMES.values():
            self.pool.warm(self.backend.local_image(runtime.image))

    def slot(self) -> Slot:
        return Slot(self)

    def remove_containers(self) -> int:
        """Remove this server's containers and volumes (found by its label; not its fleet's
        sessions, which other replicas serve); how many containers."""
        ids = self.backend.list_containers({L.SERVER_ID: self.server_id})
        self.backend.remove_containers(ids)
        self.backend.remove_volumes(self.backend.list_volumes({L.SERVER_ID: self.server_id}))  # filtered runs'
        return len(ids)

    def abandon(self) -> None:
        """A stop that cannot wait any longer: what still runs here is killed, also in the fleet's
        sessions whose turn this replica holds (they end, as a timed-out execution's does)."""
        self.remove_containers()
        self.backend.remove_containers(self.sessions.held_containers())

    def close(self) -> None:
        """The end of serving: no more expiry or warming, and none of this server's containers left."""
        self.sessions.close()
        self.pool.close()
        self.remove_containers()
        self.backend.disown()


class Slot:
    """A place among maxConcurrent executions, waited for at most the queue timeout (else 429)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def __enter__(self) -> None:
        if not self.state.slots.acquire(timeout=self.state.settings.queue_timeout_s):
            raise busy(self.state)

    def __exit__(self, *exc: object) -> None:
        self.state.slots.release()


def busy(state: ServerState) -> RequestError:
    return RequestError(429, f"busy: no free execution slot within {state.settings.queue_timeout_s:g}s")
