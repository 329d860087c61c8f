"""Label keys isol8 puts on its images and containers, and the names it gives containers."""

from __future__ import annotations

import os
import time

MANAGED = "org.isol8.managed"
RUNTIME = "org.isol8.runtime"
BUILD_HASH = "org.isol8.build.hash"
BASE_IMAGE = "org.isol8.base.image"
DEPENDENCIES = "org.isol8.dependencies"
DEPS_HASH = "org.isol8.deps.hash"
SETUP = "org.isol8.setup"
# Engines copy image labels onto containers, so containers need a key no image carries:
# cleanup selects on RUN_ID, never on MANAGED alone.
RUN_ID = "org.isol8.run.id"
RUN_PID = "org.isol8.run.pid"
RUN_HOST = "org.isol8.run.host"
RUN_STARTED = "org.isol8.run.started"
RUN_OWNER = "org.isol8.run.owner"  # the isol8 process whose watcher (backends/reaper.py) removes it
RESOLVED = "org.isol8.resolved"
AUTO = "org.isol8.auto"
SERVER_ID = "org.isol8.server.id"
SESSION_ID = "org.isol8.session.id"
SESSION = "org.isol8.session"  # what a session's first request made of it (JSON: frontends/server/sessions.py)
# the sessions of a server fleet (server.fleet), found by any of its replicas: a server without one
# is a fleet of its own (its server id), and its sessions also carry its SERVER_ID
FLEET = "org.isol8.server.fleet"
# isol8's seccomp profile itself (compact JSON) on the images it builds, for an engine that cannot
# read the profile's file: a remote podman's --seccomp-policy=image (backends/engine/dialect.py)
SECCOMP_PROFILE = "io.containers.seccomp.profile"
EGRESS_OF = "org.isol8.egress.of"  # a filtered run's proxy, relay and volume: the sandbox they serve


def container_name(kind: str = "") -> str:
    """A fresh, unique container name: isol8-<hex>, or isol8-<kind>-<hex>."""
    return f"isol8-{kind + '-' if kind else ''}{os.urandom(8).hex()}"


def run_labels(name: str) -> dict[str, str]:
    """The labels of every container isol8 creates: managed, its id, and who started it when."""
    return {
        MANAGED: "true",
        RUN_ID: name,
        RUN_PID: str(os.getpid()),
        RUN_HOST: host_identity(),
        RUN_STARTED: str(int(time.time())),
    }


_host: str | None = None


def host_identity() -> str:
    """This host as owner labels name it: its name, then the pid namespace its pids count in (the
    kernel's boot id and the namespace's inode). A pid is only checked where it means the same
    process: never across two machines of one name, nor two containers of one kernel sharing an
    engine's socket."""
    global _host
    if _host is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip()[:8]
            space = f"{boot}-{os.stat('/proc/self/ns/pid').st_ino}"
        except OSError:  # no /proc to tell: the name alone, as before
            space = ""
        _host = f"{os.uname().nodename}/{space}" if space else os.uname().nodename
    return _host
