"""One server session as any replica sees it: what its labels say its first request made of it,
and what its record (backends/engine/session_record.py) says was installed into it since."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from isol8 import labels as L
from isol8 import runtimes
from isol8.core.sandbox import SANDBOX_DIR, SandboxPolicy
from isol8.ecosystems import Spec, parse_specs
from isol8.errors import RequestError

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


def container_name(fleet: str, session_id: str) -> str:
    """The one name a fleet's session can have: two replicas creating it race in the engine."""
    return "isol8-session-" + hashlib.sha256(f"{fleet}\0{session_id}".encode()).hexdigest()[:24]


class _Gone(Exception):
    """The session's container has gone (deleted, expired, or its keeper died)."""


@dataclass
class Session:
    id: str
    container: str  # its container's engine id: a session made anew under the same name has another
    runtime: str
    keep_background: bool = False
    image: str = ""  # the image its container runs: its first request's
    asked_image: str | None = None  # the image its first request named, if it named one
    policy: SandboxPolicy = field(default_factory=SandboxPolicy)  # its container's sandbox: its first request's
    base: frozenset[Spec] = frozenset()  # the packages its image has
    installed: tuple[Spec, ...] = ()  # those installed at run time (isol8.core.installs), in /sandbox
    env: Mapping[str, str] = field(default_factory=dict)  # what makes its programs find them
    lock: threading.Lock = field(default_factory=threading.Lock)  # this replica's requests' turns
    turn: str | None = None  # the token of the engine turn this replica holds, while it holds one
    last_used: float = field(default_factory=time.monotonic)  # by this replica: the monotonic clock

    @property
    def provided(self) -> frozenset[Spec]:
        """What it has: its image's packages, but those installed since in their place."""
        names = {s.name for s in self.installed}
        return frozenset({*(s for s in self.base if s.name not in names), *self.installed})

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def meta(self) -> str:
        """Its org.isol8.session label: what its first request made of it."""
        policy = self.policy._asdict()
        policy.pop("egress")  # a session never has a filtered network
        return json.dumps(
            {
                "runtime": self.runtime,
                "keepBackground": self.keep_background,
                "image": self.image,
                "askedImage": self.asked_image,
                "packages": sorted(s.text for s in self.base),
                "policy": policy,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_labels(cls, container: str, labels: Mapping[str, str]) -> Session:
        meta = json.loads(labels[L.SESSION])
        runtime = runtimes.get(meta["runtime"])
        return cls(
            labels[L.SESSION_ID],
            container,
            runtime.name,
            bool(meta["keepBackground"]),
            str(meta["image"]),
            meta["askedImage"],
            SandboxPolicy(**meta["policy"]),
            frozenset(parse_specs(runtime, meta["packages"])),
        )

    def load(self, record: str) -> None:
        """The packages installed into it, from its record (SESSION_CONTROL's state)."""
        data = json.loads(record) if record.strip() else {}
        self.installed = parse_specs(runtimes.get(self.runtime), data.get("installed", []))
        self.env = {str(k): str(v) for k, v in data.get("env", {}).items()}

    @staticmethod
    def record_of(installed: Sequence[Spec], env: Mapping[str, str]) -> bytes:
        """The record (SESSION_CONTROL's state) of these run-time packages and their environment."""
        return json.dumps({"installed": [s.text for s in installed], "env": dict(env)}).encode()

    def to_json(self, busy: bool, idle_s: float) -> dict[str, Any]:
        from isol8.frontends.wire import timestamp

        return {
            "id": self.id,
            "runtime": self.runtime,
            "keepBackground": self.keep_background,
            "busy": busy,
            "packages": sorted(s.text for s in self.provided),
            "isActive": busy,  # the original isol8's name
            "idleSeconds": round(idle_s, 1),
            "lastAccessedAt": timestamp(time.time() - idle_s),
        }
