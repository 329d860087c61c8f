"""Warm pools: started, idle, locked-down containers per image, each used by exactly one execution.

An execution takes a container (exec instead of a container start), and the container is
destroyed afterwards while a fresh one starts in the background: a used container is never
handed to another request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from isol8 import labels as L
from isol8.core.sandbox import ContainerSpec, SandboxPolicy
from isol8.errors import EngineError
from isol8.log import get_logger

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Backend

log = get_logger(__name__)


class WarmPool:
    def __init__(self, backend: Backend, policy: SandboxPolicy, size: int, labels: Mapping[str, str]) -> None:
        self.backend = backend
        self.policy = policy
        self.size = size
        self.labels = dict(labels)
        self._idle: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._workers: set[threading.Thread] = set()

    def serves(self, image: str, policy: SandboxPolicy) -> bool:
        return self.size > 0 and policy == self.policy and image in self._idle

    def warm(self, image: str) -> None:
        """Start containers for image until `size` are idle (in parallel, waits for them)."""
        with self._lock:
            self._idle.setdefault(image, [])
            missing = self.size - len(self._idle[image])
        threads = [threading.Thread(target=self._start_one, args=(image,)) for _ in range(missing)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _start_one(self, image: str) -> None:
        name = L.container_name()
        spec = ContainerSpec(name, image, self.policy, {**self.labels, **L.run_labels(name)})
        try:
            self.backend.start_standby(spec)
        except EngineError as exc:
            log.warning("could not start a standby container for %s: %s", image, exc)
            return
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._idle.setdefault(image, []).append(name)
        if closed:
            self._destroy(name)

    def take(self, image: str) -> str | None:
        """An idle container for image (a fresh one starts in the background), or None."""
        with self._lock:
            idle = self._idle.get(image)
            name = idle.pop() if idle else None
        if name is not None:
            self._background(self._start_one, image)
        return name

    def release(self, name: str) -> None:
        """Destroy a used container, in the background."""
        self._background(self._destroy, name)

    def _background(self, target: Callable[[str], None], arg: str) -> None:
        def work() -> None:
            try:
                target(arg)
            finally:
                with self._lock:
                    self._workers.discard(thread)

        thread = threading.Thread(target=work, daemon=True)
        with self._lock:
            self._workers.add(thread)
        thread.start()

    def _destroy(self, name: str) -> None:
        try:
            self.backend.remove_containers([name])
        except EngineError as exc:
            log.warning("could not remove container %s: %s", name, exc)

    def close(self, wait_s: float = 60.0) -> None:
        """Remove every idle container, after the background starts and removals have finished."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.join(wait_s)
        with self._lock:
            names = [n for idle in self._idle.values() for n in idle]
            self._idle.clear()
        if names:
            try:
                self.backend.remove_containers(names)
            except EngineError as exc:
                log.warning("could not remove standby containers: %s", exc)
