"""Server sessions: named standby containers kept between executions, their files, and their expiry."""

from __future__ import annotations

import posixpath
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from isol8 import labels as L
from isol8.backends.base import Backend
from isol8.core.runner import RunRequest
from isol8.core.sandbox import SANDBOX_DIR, ContainerSpec
from isol8.errors import EngineError, FileTooLarge, Isol8Error, RequestError
from isol8.log import get_logger

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
        if session is None:
            raise RequestError(404, f"Session not found: {session_id}")
        return session

    def get_or_create(self, session_id: str, run: RunRequest) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            created = session is None
            if session is None:
                name = L.container_name("session")
                image = run.image or self.backend.local_image(run.runtime.image)
                session = Session(session_id, name, run.runtime.name, run.keep_background, image)
                self._sessions[session_id] = session
        if created:
            self._start(session, run)
        elif session.runtime != run.runtime.name:
            raise RequestError(409, f"session {session_id} runs {session.runtime}, not {run.runtime.name}")
        elif run.image is not None and run.image != session.image:
            # a later request's packages (or image) are not in the session's container: refused, never ignored
            raise RequestError(
                409,
                f"session {session_id} runs {session.image}, which lacks what this request asks for "
                f"(its packages are in {run.image}): ask for them in the session's first request",
            )
        return session

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

    def remove(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            self.backend.remove_containers([session.container])
        return session is not None

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_json() for s in self._sessions.values()]

    def put_file(self, session_id: str, path: str, data: bytes) -> None:
        session = self.get(session_id)
        with session.lock:
            try:
                self.backend.write_file(session.container, path, data)
            except EngineError as exc:
                raise RequestError(400, f"could not write {path}: {exc.stderr.strip() or exc}") from None
            finally:
                session.touch()

    def get_file(self, session_id: str, path: str, limit: int) -> bytes:
        session = self.get(session_id)
        with session.lock:
            try:
                return self.backend.read_file(session.container, path, limit=limit)
            except FileTooLarge as exc:
                raise RequestError(413, str(exc)) from None
            except EngineError as exc:
                raise RequestError(404, f"cannot read {path}: {exc.stderr.strip() or exc}") from None
            finally:
                session.touch()

    def _reap_forever(self) -> None:
        while not self._stop.wait(min(30.0, max(self.idle_s / 4, 0.5))):
            with self._lock:
                idle = [
                    s.id
                    for s in self._sessions.values()
                    if not s.lock.locked() and time.monotonic() - s.last_used > self.idle_s
                ]
            for session_id in idle:
                try:
                    self.remove(session_id)
                except Isol8Error:
                    pass

    def close(self) -> None:
        self._stop.set()
