"""Server sessions: named standby containers kept between executions, their files, and their expiry."""

from __future__ import annotations

import posixpath
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from isol8 import labels as L
from isol8.backends.base import Backend
from isol8.core.runner import RunRequest
from isol8.core.sandbox import SANDBOX_DIR, ContainerSpec, SandboxPolicy
from isol8.ecosystems import Spec
from isol8.errors import EngineError, FileTooLarge, Isol8Error, PackagesNotUnpacked, RequestError
from isol8.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.config import PackageSettings

log = get_logger(__name__)
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_id(session_id: object) -> str:
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise RequestError(400, "sessionId: 1-64 letters, digits, '.', '_' or '-'")
    return session_id


def sandbox_path(raw: object) -> str:
    """A file path of a /file request, which must stay inside /sandbox."""
    if not isinstance(raw, str) or not raw:
        raise RequestError(400, "path: a file under /sandbox")
    if "\0" in raw:  # no file name holds one, and no command line can carry it
        raise RequestError(400, f"path contains a NUL byte: {raw!r}")
    path = posixpath.normpath(posixpath.join(SANDBOX_DIR, raw))
    if not path.startswith(SANDBOX_DIR + "/"):
        raise RequestError(400, f"path must be inside /sandbox: {raw!r}")
    return path


@dataclass
class Session:
    id: str
    container: str
    runtime: str
    keep_background: bool = False
    image: str = ""  # the image its container runs: its first request's
    asked_image: str | None = None  # the image its first request named, if it named one
    policy: SandboxPolicy = field(default_factory=SandboxPolicy)  # its container's sandbox: its first request's
    provided: frozenset[Spec] = frozenset()  # the packages it has: its image's, then those installed into it
    installed: tuple[Spec, ...] = ()  # those installed at run time (isol8.core.installs), in /sandbox
    env: Mapping[str, str] = field(default_factory=dict)  # what makes its programs find them
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)  # for expiry: the monotonic clock
    last_access: float = field(default_factory=time.time)  # for listings: the wall clock

    def touch(self) -> None:
        self.last_used, self.last_access = time.monotonic(), time.time()

    def to_json(self) -> dict[str, Any]:
        from isol8.frontends.wire import timestamp

        busy = self.lock.locked()
        return {
            "id": self.id,
            "runtime": self.runtime,
            "keepBackground": self.keep_background,
            "busy": busy,
            "packages": sorted(s.text for s in self.provided),
            "isActive": busy,  # the original isol8's name
            "idleSeconds": round(time.monotonic() - self.last_used, 1),
            "lastAccessedAt": timestamp(self.last_access),
        }


class Sessions:
    """Named containers kept between executions: files in /sandbox stay; executions take turns.

    A session starts with the sandbox, image and runtime of its first request; an execution
    that times out ends it (its container is killed). Sessions idle longer than
    server.sessionIdleMs are removed."""

    def __init__(self, backend: Backend, server_id: str, idle_s: float) -> None:
        self.backend = backend
        self.server_id = server_id
        self.idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._reap_forever, daemon=True).start()

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.touch()  # under the lock the reaper decides by: it cannot expire now
        if session is None:
            raise RequestError(404, f"Session not found: {session_id}")
        return session

    def find(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    @contextmanager
    def held(
        self, session_id: str, run: RunRequest, asked_image: str | None, provided: Iterable[Spec] = ()
    ) -> Iterator[Session]:
        """The session (see get_or_create), its lock held: executions take turns. One that ended
        while this waited for it (its start failed, it timed out, it expired) is made anew."""
        while True:
            session = self.get_or_create(session_id, run, asked_image, provided)
            with session.lock:
                if self.find(session_id) is session:
                    yield session
                    return

    def get_or_create(
        self, session_id: str, run: RunRequest, asked_image: str | None, provided: Iterable[Spec] = ()
    ) -> Session:
        """The session, started with run's image (which has `provided`) if it is new; asked_image:
        the image the request named itself, which a running session's must be. A new session is
        listed at once, busy (its lock held) until its container has started."""
        with self._lock:
            session = self._sessions.get(session_id)
            created = session is None
            if session is None:
                name = L.container_name("session")
                image = run.image or self.backend.local_image(run.runtime.image)
                session = Session(
                    session_id,
                    name,
                    run.runtime.name,
                    run.keep_background,
                    image,
                    asked_image,
                    run.policy,
                    frozenset(provided),
                )
                session.lock.acquire()  # uncontended: nobody else has seen it yet
                self._sessions[session_id] = session
            session.touch()  # under the lock the reaper decides by: it cannot expire now
        if created:
            try:
                self._start(session, run)
            finally:
                session.lock.release()
        elif session.runtime != run.runtime.name:
            raise RequestError(409, f"session {session_id} runs {session.runtime}, not {run.runtime.name}")
        elif asked_image is not None and asked_image != session.asked_image:
            runs = session.asked_image or session.image
            raise RequestError(409, f"session {session_id} runs {runs}, not {asked_image}")
        return session

    def add_packages(self, session: Session, run: RunRequest, specs: Sequence[Spec], registry: PackageSettings) -> None:
        """Install into the session (its lock held) the specs it lacks, within its container's own
        sandbox: its run-time installs and these are installed afresh together, and replace the
        earlier ones (a package asked for again with another version replaces it). A package asked
        for without a version is not lacking if the session has it in any version. On failure the
        session is as it was, unless its earlier packages were already gone: then it ends."""
        has = {s.name for s in session.provided}
        missing = [s for s in specs if s not in session.provided and (s.constraint or s.name not in has)]
        if not missing:
            return
        from isol8.core.installs import install_tree, replace_in

        names = {s.name for s in missing}
        union = tuple(sorted({*(s for s in session.installed if s.name not in names), *missing}))
        tree = install_tree(
            self.backend,
            run.runtime,
            session.image,
            union,
            policy=session.policy,
            registry=registry,
            timeout_s=registry.install_timeout_s,
            labels=run.labels,
        )
        try:
            replace_in(self.backend, session.container, tree, timeout_s=registry.install_timeout_s)
        except PackagesNotUnpacked as exc:
            if not exc.unchanged:
                self.remove(session.id, only=session)
            raise
        session.installed, session.env = union, dict(tree.env)
        session.provided = frozenset({*(s for s in session.provided if s.name not in names), *missing})

    def _start(self, session: Session, run: RunRequest) -> None:
        labels = {L.SERVER_ID: self.server_id, L.SESSION_ID: session.id, **L.run_labels(session.container)}
        try:
            self.backend.start_standby(ContainerSpec(session.container, session.image, run.policy, labels))
        except EngineError as exc:
            with self._lock:
                self._sessions.pop(session.id, None)
            raise RequestError(500, f"could not start the session container: {exc.stderr.strip() or exc}") from None

    def sweep(self, session: Session) -> bool:
        """End every process an execution left in the session's container (a root exec the
        sandbox user cannot stop); False if that failed, and the session must end."""
        try:
            self.backend.sweep(session.container)
        except Isol8Error as exc:
            log.warning("could not sweep session %s: %s", session.id, exc)
            return False
        return True

    def remove(self, session_id: str, *, only: Session | None = None) -> bool:
        """End the session of that id (only: if it is still that one, not a newer one of the same id)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or (only is not None and session is not only):
                return False
            del self._sessions[session_id]
        self.backend.remove_containers([session.container])
        return True

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_json() for s in self._sessions.values()]

    def put_file(self, session_id: str, path: str, data: bytes) -> None:
        with self._existing(session_id) as session:
            try:
                self.backend.write_file(session.container, path, data)
            except EngineError as exc:
                raise RequestError(400, f"could not write {path}: {exc.stderr.strip() or exc}") from None

    def get_file(self, session_id: str, path: str, limit: int) -> bytes:
        with self._existing(session_id) as session:
            try:
                return self.backend.read_file(session.container, path, limit=limit)
            except FileTooLarge as exc:
                raise RequestError(413, str(exc)) from None
            except EngineError as exc:
                raise RequestError(404, f"cannot read {path}: {exc.stderr.strip() or exc}") from None

    @contextmanager
    def _existing(self, session_id: str) -> Iterator[Session]:
        """The session of that id, its lock held, touched afterwards; 404 if there is none, or if
        it ended while this waited for its turn."""
        session = self.get(session_id)
        with session.lock:
            if self.find(session_id) is not session:
                raise RequestError(404, f"Session not found: {session_id}")
            try:
                yield session
            finally:
                session.touch()

    def _reap_forever(self) -> None:
        while not self._stop.wait(min(30.0, max(self.idle_s / 4, 0.5))):
            for session in self._expire():
                try:
                    self.backend.remove_containers([session.container])
                except Isol8Error as exc:
                    log.warning("could not remove expired session %s: %s", session.id, exc)

    def _expire(self) -> list[Session]:
        """Take out the sessions idle too long: decided and done under the lock that a request's
        get_or_create touches them under, and only those not busy (their lock is free)."""
        expired = []
        with self._lock:
            for session in list(self._sessions.values()):
                if time.monotonic() - session.last_used <= self.idle_s or not session.lock.acquire(blocking=False):
                    continue
                try:
                    if time.monotonic() - session.last_used > self.idle_s:
                        del self._sessions[session.id]
                        expired.append(session)
                finally:
                    session.lock.release()
        return expired

    def close(self) -> None:
        self._stop.set()
