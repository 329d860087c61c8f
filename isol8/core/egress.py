"""A filtered run's network as data: the hosts its code may reach, and the proxy config that enforces it.

A filtered sandbox has no network but loopback, where PROXY_URL leads to an egress proxy outside
it (squid, from the isol8:proxy image; backends/engine/egress.py starts it). The proxy is the only
way out, and it decides by name: a deny-listed or unlisted name is refused before it is ever
resolved, and an allowed name is resolved by the proxy itself and refused when any of its
addresses is private, loopback, link-local or otherwise not the public internet (BLOCKED), unless
the config lists that range in network.allowPrivate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from isol8.errors import UsageError

PROXY_IMAGE = "isol8:proxy"  # dockerfiles/proxy: squid and socat
PROXY_PORT = 3128  # also in dockerfiles/proxy/isol8-egress
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
# what the proxy refuses to connect to, whatever name led there (RFC 6890's special-purpose ranges)
BLOCKED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)
MAX_LOG_ENTRIES = 1000
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
# what a host regex may hold: enough for the original isol8's anchored patterns, and nothing that
# could end a token of squid's config (space, quote, #) or mean something else to POSIX regcomp
_REGEX_CHARS = re.compile(r"\^[a-z0-9_.*+?()\[\]{}|\\-]+\$")


class InvalidHost(UsageError):
    """A host pattern, address range or hosts entry that cannot be enforced as written."""


class Egress(NamedTuple):
    """What a filtered run may reach: allow and deny are host patterns (see host_regex)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    allow_private: tuple[str, ...] = ()  # address ranges the proxy may connect to after all
    hosts: tuple[tuple[str, str], ...] = ()  # name -> address, for the proxy's own resolver


def host_regex(pattern: str) -> str:
    """The anchored POSIX regex for a host pattern: an exact name (or IPv4 address), `*.example.com`
    (any name below example.com, not example.com itself), or an anchored regex `^...$` as the
    original isol8's networkFilter holds. Names are matched case-insensitively."""
    text = pattern.strip().lower()
    if text.startswith("^"):
        if not _REGEX_CHARS.fullmatch(text) or "(?" in text or re.search(r"\\[^.\-]", text):
            raise InvalidHost(
                f"host regex {pattern!r}: it must start with ^ and end with $, and hold only letters, digits"
                " and . - _ * + ? | ( ) [ ] { } (a backslash only before . or -)"
            )
        try:
            re.compile(text)
        except re.error as exc:
            raise InvalidHost(f"host regex {pattern!r}: {exc}") from None
        return text
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if not _NAME.fullmatch(name) or len(name) > 253:
        raise InvalidHost(
            f"host {pattern!r}: expected a name like api.example.com, *.example.com or an anchored regex ^...$"
        )
    escaped = name.rstrip(".").replace(".", r"\.")
    return rf"^([a-z0-9_-]+\.)+{escaped}$" if wildcard else f"^{escaped}$"


def covered(pattern: str, ceiling: Sequence[str]) -> bool:
    """Whether a request's host pattern stays within a server's allowed ones: the same pattern,
    or an exact name that one of them matches."""
    regex = host_regex(pattern)
    ceiling_regexes = [host_regex(c) for c in ceiling]
    if regex in ceiling_regexes:
        return True
    text = pattern.strip().lower().rstrip(".")
    exact = regex == "^" + text.replace(".", r"\.") + "$"
    return exact and any(re.fullmatch(c, text) for c in ceiling_regexes)


def _ranges(values: Iterable[str]) -> tuple[str, ...]:
    import ipaddress  # only a filtered run's plan needs it

    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise InvalidHost(f"network.allowPrivate: {value!r} is not an address range like 10.1.2.0/24") from None
    return tuple(out)


def _hosts(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    import ipaddress

    out = []
    for name, address in values.items():
        if not _NAME.fullmatch(name.lower()):
            raise InvalidHost(f"network.hosts: {name!r} is not a host name")
        try:
            out.append((name.lower(), str(ipaddress.ip_address(str(address).strip()))))
        except ValueError:
            raise InvalidHost(f"network.hosts: {name}: {address!r} is not an IP address") from None
    return tuple(out)


def make_egress(
    allow: Iterable[str],
    deny: Iterable[str] = (),
    *,
    allow_private: Iterable[str] = (),
    hosts: Mapping[str, str] | None = None,
) -> Egress:
    """A checked Egress (InvalidHost when an entry cannot be enforced as written)."""
    allowed, denied = tuple(dict.fromkeys(allow)), tuple(dict.fromkeys(deny))
    for pattern in (*allowed, *denied):
        host_regex(pattern)
    return Egress(allowed, denied, _ranges(allow_private), _hosts(hosts or {}))


def squid_config(egress: Egress) -> str:
    """squid.conf for one filtered run's proxy, listening on 127.0.0.1:PROXY_PORT of its container.

    The order of the http_access lines is the policy: a deny-listed or unlisted name is refused
    before anything resolves it (no lookup leaks it), then the proxy's own resolution of an allowed
    name must give no BLOCKED address. Every decision is logged on stdout, one line each (parse_log)."""
    lines = [
        f"http_port 127.0.0.1:{PROXY_PORT}",
        "pid_filename none",
        "pinger_enable off",
        "cache deny all",
        "cache_mem 0 MB",
        "max_filedescriptors 1024",
        "logformat isol8 %ts.%03tu %rm %ru %>Hs %{isol8}note %<a",
        "access_log stdio:/dev/stdout isol8",
        "cache_log stdio:/dev/stderr",
        "logfile_rotate 0",
        "shutdown_lifetime 0 seconds",
        "via off",
        "forwarded_for delete",
        "httpd_suppress_version_string on",
        "acl blocked_address dst " + " ".join(BLOCKED),
    ]
    lines += [f"acl why_{why.replace('-', '_')} annotate_transaction isol8={why}" for why in _VERDICTS]
    if egress.deny:
        lines.append("acl denied dstdom_regex -n -i " + " ".join(host_regex(p) for p in egress.deny))
        lines.append("http_access deny denied why_denied")
    if not egress.allow:
        lines.append("http_access deny all why_not_allowed")
        return "".join(f"{line}\n" for line in lines)
    lines.append("acl allowed dstdom_regex -n -i " + " ".join(host_regex(p) for p in egress.allow))
    lines.append("http_access deny !allowed why_not_allowed")
    if egress.allow_private:
        lines.append("acl private_ok dst " + " ".join(egress.allow_private))
        lines.append("http_access deny blocked_address !private_ok why_private_address")
    else:
        lines.append("http_access deny blocked_address why_private_address")
    lines += ["http_access allow allowed why_allowed", "http_access deny all why_not_allowed"]
    return "".join(f"{line}\n" for line in lines)


_VERDICTS = ("allowed", "denied", "not-allowed", "private-address")


class Decision(NamedTuple):
    """One request the proxy decided on: verdict is allowed, denied (by the deny list), not-allowed
    (on no allow list) or private-address (an allowed name that resolved to a BLOCKED address)."""

    time: float
    method: str
    target: str  # host:port for CONNECT, else the URL
    status: int
    verdict: str
    address: str | None  # where an allowed request went

    def as_json(self) -> dict[str, object]:
        return {
            "time": self.time,
            "method": self.method,
            "target": self.target,
            "status": self.status,
            "verdict": self.verdict,
            "address": self.address,
        }


def parse_log(line: str) -> Decision | None:
    """A line of squid_config's access log, or None for anything else."""
    parts = line.split()
    if len(parts) != 6 or parts[4] not in _VERDICTS:
        return None
    try:
        when, status = float(parts[0]), int(parts[3])
    except ValueError:
        return None
    return Decision(when, parts[1], parts[2], status, parts[4], None if parts[5] == "-" else parts[5])


def proxy_env() -> dict[str, str]:
    """What points a filtered sandbox's programs and package managers at the proxy."""
    proxied = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "npm_config_proxy", "npm_config_https_proxy")
    env = dict.fromkeys(proxied, PROXY_URL)
    env |= dict.fromkeys(("NO_PROXY", "no_proxy"), "localhost,127.0.0.1,::1")
    env["NODE_USE_ENV_PROXY"] = "1"  # Node's own fetch, from Node 24
    return env
