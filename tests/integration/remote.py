"""Engines reached as if they were elsewhere: an sshd (Debian's openssh-server) with throwaway
keys in front of this machine's docker and podman, and a `podman system service` API socket.

Nothing here fakes an engine: docker's client really goes through ssh (`docker system
dial-stdio` on the far side), podman's client really talks to its service over the socket or
over ssh. The only stand-in is an `ssh` on PATH that adds `-F` with the test's own client config
(keys, port, no known-hosts prompt), which is what a user's ~/.ssh/config does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from tests.integration.ports import free_port

SSHD = "/usr/sbin/sshd"


class Sshd(NamedTuple):
    port: int
    key: Path  # the client's private key
    bin: Path  # a folder whose `ssh` uses the client config
    config: Path  # the client config, for ssh -F


class Endpoint(NamedTuple):
    """One way to reach an engine: isol8's global options, a config for what has no option, and
    the environment of isol8 and the engine's client."""

    name: str
    engine: str
    args: tuple[str, ...]
    env: dict[str, str]


def _wait_for(check: object, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {within:g}s")
        time.sleep(0.1)


@contextmanager
def sshd(root: Path, *, multiplex: bool = False) -> Iterator[Sshd]:
    """An sshd on a free loopback port that lets root in with a fresh key, and nothing else."""
    if not os.path.exists(SSHD):
        raise AssertionError(f"{SSHD} is missing: install Debian's openssh-server (scripts/test-all does)")
    root.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    port = free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n"
        f"PidFile {root}/sshd.pid\nMaxStartups 200:30:400\nMaxSessions 200\n"
    )
    mux = f"  ControlMaster auto\n  ControlPath {root}/mux-%C\n  ControlPersist 60\n" if multiplex else ""
    (root / "ssh_config").write_text(
        f"Host *\n  User root\n  Port {port}\n  IdentityFile {root}/client_key\n  IdentitiesOnly yes\n"
        f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n{mux}"
    )
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {root}/ssh_config "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege separation folder
    proc = subprocess.Popen([SSHD, "-D", "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")])
    try:
        _wait_for(lambda: _connects(port), "sshd")
        yield Sshd(port, root / "client_key", bin_dir, root / "ssh_config")
    finally:
        if multiplex:
            subprocess.run(
                ["/usr/bin/ssh", "-F", str(root / "ssh_config"), "-O", "exit", "127.0.0.1"], capture_output=True
            )
        proc.terminate()
        proc.wait(timeout=10)


def _connects(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def podman_service(path: Path) -> Iterator[Path]:
    """`podman system service` on a unix socket of its own, serving this machine's podman."""
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: path.exists(), "podman system service")
        yield path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        path.unlink(missing_ok=True)


REGISTRY = "/usr/bin/docker-registry"


@contextmanager
def registry(root: Path) -> Iterator[str]:
    """A registry (Debian's docker-registry) on a free local port, storing in root; its host:port.
    Plain HTTP: docker's daemon allows that for 127.0.0.0/8, podman and skopeo are told to."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [REGISTRY, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "registry.log").open("w"),
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _connects(port), "docker-registry")
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
