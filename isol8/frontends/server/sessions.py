"""Server sessions: named standby containers kept between executions, their files, and their expiry.

A session lives in the engine, not in a server's memory, so that replicas of one fleet
(server.fleet) sharing an engine serve any session, whichever made it:
- its container's name comes from its fleet and id, so creating it is the engine's atomic act;
- its labels say what its first request made of it (runtime, image, sandbox, packages);
- its record in the container (backends/engine/session_record.py's SESSION_CONTROL, root's alone: its
  programs can neither read nor change it) holds whose turn it is, its last use and the packages
  installed into it since.
A replica keeps a cache of what labels said, and a lock per session so that its own requests
take turns before they ask the engine for one."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from isol8 import labels as L
from isol8.backends.base import Backend
from isol8.core.runner import RunRequest
from isol8.core.sandbox import ContainerSpec
from isol8.ecosystems import Spec
from isol8.errors import (
    ContainerNameInUse,
    ContainerNotFound,
    EngineError,
    EngineUnavailable,
    FileTooLarge,
    Isol8Error,
    PackagesNotUnpacked,
    RequestError,
)
from isol8.frontends.server.session import Session, _Gone, container_name
from isol8.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.config import PackageSettings

log = get_logger(__name__)
BUSY_EXIT = 3  # SESSION_CONTROL's claim: the turn is another's
OUT_OF_REACH_S = 2.0  # how long a session's claims fail (not busy) before it counts as ended
START_WAIT_S = 120.0  # how long a session another request is starting is waited for
MAX_RECORD_BYTES = 65536  # what the server saves is its own; what it reads back is bounded all the same


class Sessions:
    """Named containers kept between executions: files in /sandbox stay; executions take turns.

    A session starts with the sandbox, image and runtime of its first request; an execution
    that times out ends it (its container is killed). Sessions idle longer than
    server.sessionIdleMs are removed by whichever replica sees it first. Without a fleet, a
    server's sessions are its own, and go with it."""

    def __init__(
        self, backend: Backend, server_id: str, idle_s: float, *, fleet: str | None = None, lease_s: float = 900.0
    ) -> None:
        self.backend = backend
        self.server_id = server_id
        self.idle_s = idle_s
        self.fleet = fleet or server_id
        self.shared = fleet is not None
        self.lease_s = lease_s  # the longest turn: an execution's, with its installs, and a margin
        self._cache: dict[str, Session] = {}
        self._unreachable: dict[str, float] = {}  # containers whose record expiry could not read, since when
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._reap_forever, daemon=True).start()

    # -- finding and making ---------------------------------------------------------------------

    def find(self, session_id: str) -> Session | None:
        """The session of that id: the one this replica knows, else the engine's, else None."""
        with self._lock:
            session = self._cache.get(session_id)
        return session if session is not None else self._lookup(session_id)

    def _lookup(self, session_id: str) -> Session | None:
        """The session's container as the engine has it; one being started (by a request here or
        on another replica) is waited for, one whose keeper died (out of memory) removed."""
        deadline = time.monotonic() + START_WAIT_S
        while True:
            name = container_name(self.fleet, session_id)
            found = [
                info
                for info in self.backend.inspect_containers([name])
                if info.labels.get(L.FLEET) == self.fleet and info.labels.get(L.SESSION_ID) == session_id
            ]
            if not found:
                return None
            info = found[0]
            if info.running:
                try:
                    return self._remember(Session.from_labels(info.id, info.labels))
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("session %s: unreadable labels, removed: %s", session_id, exc)
            elif not info.ended and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            self.backend.remove_containers([info.id])
            return None

    def _remember(self, session: Session) -> Session:
        """The cached session, if it is this container's (its lock is the one requests take), else this one."""
        with self._lock:
            known = self._cache.get(session.id)
            if known is not None and known.container == session.container:
                return known
            self._cache[session.id] = session
            return session

    def _forget(self, session: Session) -> None:
        with self._lock:
            if self._cache.get(session.id) is session:
                del self._cache[session.id]

    def get_or_create(
        self, session_id: str, run: RunRequest, asked_image: str | None, provided: Iterable[Spec] = ()
    ) -> Session:
        """The session, started with run's image (which has `provided`) if it is new; asked_image:
        the image the request named itself, which a running session's must be."""
        session = self.find(session_id) or self._create(session_id, run, asked_image, provided)
        if session.runtime != run.runtime.name:
            raise RequestError(409, f"session {session_id} runs {session.runtime}, not {run.runtime.name}")
        if asked_image is not None and asked_image != session.asked_image:
            runs = session.asked_image or session.image
            raise RequestError(409, f"session {session_id} runs {runs}, not {asked_image}")
        return session

    def _create(self, session_id: str, run: RunRequest, asked_image: str | None, provided: Iterable[Spec]) -> Session:
        image = run.image or self.backend.local_image(run.runtime.image)
        name = container_name(self.fleet, session_id)
        session = Session(
            session_id, name, run.runtime.name, run.keep_background, image, asked_image, run.policy, frozenset(provided)
        )
        labels = {L.FLEET: self.fleet, L.SESSION_ID: session_id, L.SESSION: session.meta(), **L.run_labels(name)}
        if not self.shared:
            labels[L.SERVER_ID] = self.server_id  # its server's alone: removed with it
        try:
            session.container = self.backend.start_standby(
                ContainerSpec(name, image, run.policy, labels), outlives=self.shared
            )
        except ContainerNameInUse:  # another request (here or on another replica) made it first
            found = self._lookup(session_id)
            if found is None:
                raise RequestError(503, f"session {session_id} was ended while it started: try again") from None
            return found
        except EngineError as exc:
            raise RequestError(500, f"could not start the session container: {exc.stderr.strip() or exc}") from None
        return self._remember(session)

    # -- turns ----------------------------------------------------------------------------------

    @contextmanager
    def held(
        self, session_id: str, run: RunRequest, asked_image: str | None, provided: Iterable[Spec] = ()
    ) -> Iterator[Session]:
        """The session (see get_or_create) with its turn: this replica's lock, then the engine's.
        One that ended before this got its turn is made anew. On leaving, a turn the caller did not
        finish is given back, its processes left alone (nothing of a program ran)."""
        for _ in range(3):
            session = self.get_or_create(session_id, run, asked_image, provided)
            with session.lock:
                try:
                    self._claim(session)
                except _Gone:
                    self._forget(session)
                    continue
                try:
                    yield session
                finally:
                    if session.turn is not None:
                        self.finish(session, ended=False, sweep=False)
                return
        raise RequestError(503, f"session {session_id} kept ending before its turn: try again")

    def _claim(self, session: Session) -> None:
        """Take the session's turn in the engine, waiting while another replica holds it (polled
        from here: a wait inside the container would end with the holder's sweep), and read its record."""
        token, deadline, pause = os.urandom(8).hex(), time.monotonic() + self.lease_s, 0.05
        failures, failing_since = 0, 0.0
        while True:
            try:
                record = self.backend.session_control(session.container, "claim", [token, str(int(self.lease_s))])
                break
            except ContainerNotFound:
                raise _Gone() from None
            except EngineError as exc:
                if exc.returncode == BUSY_EXIT:
                    failures = 0  # within reach
                else:  # killed by another turn's sweep, the container going, or no pid left for it
                    if not self._running(session):
                        raise _Gone() from None
                    failures += 1
                    failing_since = failing_since if failures > 1 else time.monotonic()
                    # out of reach for seconds, not one sweep's moment: its programs used up its pids
                    if failures >= 3 and time.monotonic() - failing_since >= OUT_OF_REACH_S:
                        self.remove(session.id, only=session)
                        raise RequestError(
                            500, f"session {session.id} ended: its record is out of reach: {exc}"
                        ) from None
            if time.monotonic() > deadline:
                raise RequestError(409, f"session {session.id} is busy: its turn was not free in time")
            time.sleep(pause)
            pause = min(pause * 2, 0.4)
        session.turn = token
        try:
            session.load(record[:MAX_RECORD_BYTES])
        except (Isol8Error, ValueError, TypeError, AttributeError) as exc:
            log.warning("session %s: unreadable record, taken as empty: %s", session.id, exc)
            session.installed, session.env = (), {}
        session.touch()

    def _running(self, session: Session) -> bool:
        return any(info.running for info in self.backend.inspect_containers([session.container]))

    def finish(self, session: Session, *, ended: bool, sweep: bool | None = None) -> bool:
        """The end of a turn: the session ends (ended: its execution was killed or disturbed
        isol8's wrapper), or every process the execution left ends (sweep; by default unless the
        session keeps them) and the turn is given back. False if the session has ended."""
        token, session.turn = session.turn, None
        session.touch()
        if ended or token is None:
            self.remove(session.id, only=session)
            return False
        keep = session.keep_background if sweep is None else not sweep
        try:
            self.backend.session_control(session.container, "release", [token, "0" if keep else "1"])
        except Isol8Error as exc:
            log.warning("could not end the turn of session %s: %s", session.id, exc)
            self.remove(session.id, only=session)
            return False
        return True

    def add_packages(self, session: Session, run: RunRequest, specs: Sequence[Spec], registry: PackageSettings) -> None:
        """Install into the session (its turn held) the specs it lacks, within its container's own
        sandbox: its run-time installs and these are installed afresh together, and replace the
        earlier ones (a package asked for again with another version replaces it). A package asked
        for without a version is not lacking if the session has it in any version. On failure the
        session is as it was, unless its earlier packages were already gone: then it ends."""
        provided = session.provided
        has = {s.name for s in provided}
        missing = [s for s in specs if s not in provided and (s.constraint or s.name not in has)]
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
        record = Session.record_of(union, tree.env)
        if len(record) > MAX_RECORD_BYTES:  # it could not be read back: refused while nothing changed
            raise RequestError(400, f"session {session.id}: too many packages to record ({len(record)} bytes)")
        try:
            replace_in(self.backend, session.container, tree, timeout_s=registry.install_timeout_s)
        except PackagesNotUnpacked as exc:
            if not exc.unchanged:
                self.finish(session, ended=True)
            raise
        session.installed, session.env = union, dict(tree.env)
        try:
            self.backend.session_control(session.container, "save", [session.turn or ""], data=record)
        except Isol8Error as exc:  # its packages are in, unrecorded: no later turn would know them
            self.finish(session, ended=True)
            raise RequestError(500, f"session {session.id} ended: could not record its packages: {exc}") from None

    # -- the other routes -------------------------------------------------------------------------

    def remove(self, session_id: str, *, only: Session | None = None) -> bool:
        """End the session of that id (only: if it is still that container, not a newer one of the same id)."""
        session = only or self.find(session_id)
        if session is None:
            return False
        self._forget(session)
        self.backend.remove_containers([session.container])
        return True

    def listing(self) -> list[dict[str, Any]]:
        """Every session of the fleet, from the engine, with its record's busy and idle time."""
        from concurrent.futures import ThreadPoolExecutor

        ids = self.backend.list_containers({L.FLEET: self.fleet, L.SESSION_ID: None})
        infos = [info for info in self.backend.inspect_containers(ids) if L.SESSION in info.labels]
        with ThreadPoolExecutor(max_workers=8) as pool:
            listed = pool.map(lambda info: self._status(info.id, info.labels), infos)
            return [entry for entry in listed if entry is not None]

    def _status(self, container: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
        try:
            session = Session.from_labels(container, labels)
        except (KeyError, TypeError, ValueError):
            return None
        try:
            said = self.backend.session_control(container, "status")
            first, _, record = said.partition("\n")
            busy, used, now = (int(word) for word in first.split())
            session.load(record[:MAX_RECORD_BYTES])
        except (Isol8Error, ValueError, TypeError, AttributeError):
            return session.to_json(busy=True, idle_s=0.0)  # starting, or its record is in use: busy
        return session.to_json(busy=bool(busy), idle_s=max(now - used, 0))

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
        """The session of that id, its turn held; 404 if there is none, or if it ended before its turn."""
        session = self.find(session_id)
        if session is None:
            raise RequestError(404, f"Session not found: {session_id}")
        with session.lock:
            try:
                self._claim(session)
            except _Gone:
                self._forget(session)
                raise RequestError(404, f"Session not found: {session_id}") from None
            try:
                yield session
            finally:
                self.finish(session, ended=False, sweep=False)

    # -- expiry and the end -----------------------------------------------------------------------

    def _reap_forever(self) -> None:
        while not self._stop.wait(min(30.0, max(self.idle_s / 4, 0.5))):
            try:
                self.expire_idle()
            except Exception as exc:  # noqa: BLE001 - whatever it was, the next pass tries again
                log.warning("could not expire idle sessions: %s", exc)

    def expire_idle(self) -> list[str]:
        """Remove the fleet's sessions idle too long (by their records: any replica's use counts),
        never one whose turn is held; the ids of the containers removed. Checked 8 at a time."""
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            known = {s.container: s for s in self._cache.values()}
        listed = self.backend.list_containers({L.FLEET: self.fleet, L.SESSION_ID: None})
        for gone in set(self._unreachable) - set(listed):
            del self._unreachable[gone]
        with ThreadPoolExecutor(max_workers=8) as pool:
            expired = list(pool.map(lambda c: self._expire_one(c, known.get(c)), listed))
        return [container for container, done in zip(listed, expired, strict=True) if done]

    def _expire_one(self, container: str, session: Session | None) -> bool:
        if session is not None and (session.lock.locked() or time.monotonic() - session.last_used <= self.idle_s):
            return False  # in use here, or used here lately: its record says no less
        try:
            said = self.backend.session_control(container, "expire", [str(int(self.idle_s))])
            self._unreachable.pop(container, None)
        except ContainerNotFound:
            return False
        except EngineUnavailable as exc:  # the engine's trouble, not the session's
            log.warning("could not check session container %s: %s", container, exc)
            return False
        except EngineError as exc:  # out of reach (no pid left, starved...) for longer than it may idle: ended
            since = self._unreachable.setdefault(container, time.monotonic())
            log.warning("could not check session container %s: %s", container, exc)
            said = "expired" if time.monotonic() - since > self.idle_s else ""
        if said.strip() != "expired":
            return False
        self._unreachable.pop(container, None)
        if session is not None:
            self._forget(session)
        self.backend.remove_containers([container])
        return True

    def held_containers(self) -> list[str]:
        """The containers of the sessions whose turn this replica holds (for a stop that cannot wait)."""
        with self._lock:
            return [s.container for s in self._cache.values() if s.turn is not None]

    def close(self) -> None:
        self._stop.set()
