"""Ports for the servers the integration tests start (isol8 serve, haproxy, sshd, a registry)."""

from __future__ import annotations

import random
import socket

_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, for a server that binds it soon after.

    Not the kernel's pick (bind to 0): it hands a port just closed out again, so two servers of
    one test could be given the same one (seen: haproxy took a fleet replica's port while the
    replica was still checking its images). Not in the ephemeral range either, where any outgoing
    connection's own port may take it meanwhile. Never the same twice in one test session."""
    low = _ephemeral_low()
    candidates = [port for port in range(max(1024, low - 12000), low) if port not in _handed_out]
    for port in random.sample(candidates, min(len(candidates), 500)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")
