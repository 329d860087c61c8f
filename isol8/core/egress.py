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
from typing import Any

from isol8.errors import UsageError
from isol8.records import NamedTuple

PROXY_IMAGE = "isol8:proxy"  # dockerfiles/proxy: squid and socat
PROXY_PORT = 3128  # also in dockerfiles/proxy/isol8-egress
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
WEB_PORTS = (80, 443)  # what an allowed host is reached on, unless its pattern names a port
# what the proxy refuses to connect to, whatever name led there: RFC 6890's special-purpose
# ranges, and the IPv6 ones that embed an IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible)
BLOCKED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/96",
    "::1/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
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
_PORT = re.compile(r"(.+):([0-9]{1,5})")
# only what an address is written with: a scope ID (fe80::1%eth0) may hold anything, a newline too
_ADDRESS = re.compile(r"[0-9a-f.:/]+")


class InvalidHost(UsageError):
    """A host pattern, address range or hosts entry that cannot be enforced as written."""


class Egress(NamedTuple):
    """What a filtered run may reach: allow and deny are host patterns (see host_rule)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    allow_private: tuple[str, ...] = ()  # address ranges the proxy may connect to after all
    hosts: tuple[tuple[str, str], ...] = ()  # name -> address, for the proxy's own resolver


class HostRule(NamedTuple):
    regex: str  # anchored at both ends, matched case-insensitively against the whole name
    ports: tuple[int, ...]
    exact: str | None  # the name, when the pattern is one name


def host_rule(pattern: str) -> HostRule:
    """What a host pattern allows: an exact name (or IPv4 address), `*.example.com` (any name below
    example.com, not example.com itself), or an anchored regex `^...$` as the original isol8's
    networkFilter holds; each on ports 80 and 443, or on the one port a `:PORT` suffix names."""
    text = pattern.strip().lower()
    ports: tuple[int, ...] = WEB_PORTS
    with_port = _PORT.fullmatch(text)
    if with_port:
        text, port = with_port.group(1), int(with_port.group(2))
        if not 0 < port < 65536:
            raise InvalidHost(f"host {pattern!r}: port {port} is not between 1 and 65535")
        ports = (port,)
    if text.startswith("^"):
        regex = _regex(pattern, text)
        body = text[1:-1]
        if re.fullmatch(r"([a-z0-9_-]|\\\.)+", body):  # one name, written as a regex: ^api\.example\.com$
            return HostRule(f"^{body}$", ports, body.replace("\\.", "."))
        return HostRule(regex, ports, None)
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if not _NAME.fullmatch(name) or len(name) > 253:
        raise InvalidHost(
            f"host {pattern!r}: expected a name like api.example.com, *.example.com or an anchored regex ^...$"
            " (each with an optional :PORT)"
        )
    escaped = name.rstrip(".").replace(".", r"\.")
    if wildcard:
        return HostRule(rf"^([a-z0-9_-]+\.)+{escaped}$", ports, None)
    return HostRule(f"^{escaped}$", ports, name.rstrip("."))


def _regex(pattern: str, text: str) -> str:
    """^BODY$ as ^(BODY)$: an alternation in BODY stays between the anchors (^a|b$ would not)."""
    body = text[1:-1]
    lazy = re.search(r"[*+?}]\?", body)
    if not _REGEX_CHARS.fullmatch(text) or not body or "(?" in body or lazy or re.search(r"\\[^.\-]", body):
        raise InvalidHost(
            f"host regex {pattern!r}: it must start with ^ and end with $, and hold only letters, digits"
            " and . - _ * + ? | ( ) [ ] { } (a backslash only before . or -, no lazy quantifier)"
        )
    try:
        re.compile(text)
    except re.error as exc:
        raise InvalidHost(f"host regex {pattern!r}: {exc}") from None
    return f"^({body})$"


def host_regex(pattern: str) -> str:
    """The anchored regex of a host pattern's names (host_rule)."""
    return host_rule(pattern).regex


def covered(pattern: str, ceiling: Sequence[str]) -> bool:
    """Whether a request's host pattern stays within a server's allowed ones: the same names (the
    same pattern) or one name that one of them matches, on ports that one allows."""
    asked = host_rule(pattern)
    for allowed in map(host_rule, ceiling):
        if not set(asked.ports) <= set(allowed.ports):
            continue
        if asked.regex == allowed.regex or (asked.exact and re.fullmatch(allowed.regex, asked.exact)):
            return True
    return False


def _ranges(values: Iterable[str]) -> tuple[str, ...]:
    import ipaddress  # only a filtered run's plan needs it

    out = []
    for value in values:
        try:
            if "%" in value:
                raise ValueError("a scope ID")
            network = str(ipaddress.ip_network(value.strip(), strict=False))
            if not _ADDRESS.fullmatch(network):
                raise ValueError(network)
        except ValueError:
            raise InvalidHost(f"network.allowPrivate: {value!r} is not an address range like 10.1.2.0/24") from None
        out.append(network)
    return tuple(out)


def _hosts(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    import ipaddress

    out = []
    for name, address in values.items():
        if not _NAME.fullmatch(name.lower()):
            raise InvalidHost(f"network.hosts: {name!r} is not a host name")
        try:
            if "%" in str(address):
                raise ValueError("a scope ID")
            written = str(ipaddress.ip_address(str(address).strip()))
            if not _ADDRESS.fullmatch(written):
                raise ValueError(written)
        except ValueError:
            raise InvalidHost(f"network.hosts: {name}: {address!r} is not an IP address") from None
        out.append((name.lower(), written))
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
    for pattern in allowed:
        host_rule(pattern)
    for pattern in denied:
        if host_rule(pattern).ports != WEB_PORTS:
            raise InvalidHost(f"denied host {pattern!r}: a denied host is denied on every port (no :PORT)")
    return Egress(allowed, denied, _ranges(allow_private), _hosts(hosts or {}))


def blocked_ranges(allow_private: Iterable[str]) -> list[str]:
    """BLOCKED less the ranges allowPrivate opens: the proxy refuses a name when any of its
    addresses is in one (so a name with one allowed and one other private address is refused)."""
    import ipaddress

    opened = [ipaddress.ip_network(r) for r in allow_private]
    left = []
    for text in BLOCKED:
        pieces = [ipaddress.ip_network(text)]
        for hole in opened:
            pieces = [rest for p in pieces for rest in _without(p, hole)]
        left += pieces
    return [str(n) for n in ipaddress.collapse_addresses(n for n in left if n.version == 4)] + [
        str(n) for n in ipaddress.collapse_addresses(n for n in left if n.version == 6)
    ]


def _without(network: Any, hole: Any) -> list[Any]:
    if network.version != hole.version or not network.overlaps(hole):
        return [network]
    if network.subnet_of(hole):
        return []
    return list(network.address_exclude(hole))


def squid_config(egress: Egress, *, listen: str = f"127.0.0.1:{PROXY_PORT}") -> str:
    """squid.conf for one filtered run's proxy, listening on 127.0.0.1:PROXY_PORT of its container
    (on Kubernetes, on PROXY_PORT of its Pod's address: a NetworkPolicy lets its sandbox alone in).

    The order of the http_access lines is the policy: squid's own manager and anything but HTTP
    and CONNECT are refused; a deny-listed or unlisted name (or port) is refused before anything
    resolves it (no lookup leaks it); then the proxy's own resolution of an allowed name must give
    no blocked address. Every decision is logged on stdout, one line each (parse_log)."""
    lines = [
        f"http_port {listen}",
        "pid_filename none",
        "pinger_enable off",
        "cache deny all",
        "cache_mem 0 MB",
        "max_filedescriptors 1024",
        "visible_hostname isol8-proxy",
        "logformat isol8 %ts.%03tu %#rm %#ru %>Hs %{isol8}note %<a",
        "access_log stdio:/dev/stdout isol8",
        "cache_log stdio:/dev/stderr",
        "logfile_rotate 0",
        "shutdown_lifetime 0 seconds",
        "via off",
        "forwarded_for delete",
        "httpd_suppress_version_string on",
        "acl connect method CONNECT",
        "acl web proto HTTP",
    ]
    lines += [f"acl why_{why.replace('-', '_')} annotate_transaction isol8={why}" for why in _VERDICTS]
    lines += ["http_access deny manager why_not_allowed", "http_access deny !connect !web why_not_allowed"]
    if egress.deny:
        lines.append("acl denied dstdom_regex -n -i " + " ".join(host_regex(p) for p in egress.deny))
        lines.append("http_access deny denied why_denied")
    if not egress.allow:
        lines.append("http_access deny all why_not_allowed")
        return _checked(lines)
    for i, rule in enumerate(map(host_rule, egress.allow)):
        lines.append(f"acl host_{i} dstdom_regex -n -i {rule.regex}")
        lines.append(f"acl port_{i} port {' '.join(map(str, rule.ports))}")
        lines.append(f"acl dest_{i} all-of host_{i} port_{i}")
    lines.append("acl allowed any-of " + " ".join(f"dest_{i}" for i in range(len(egress.allow))))
    lines.append("http_access deny !allowed why_not_allowed")
    blocked = blocked_ranges(egress.allow_private)
    if blocked:
        lines.append("acl blocked_address dst " + " ".join(blocked))
        lines.append("http_access deny blocked_address why_private_address")
    lines += ["http_access allow allowed why_allowed", "http_access deny all why_not_allowed"]
    return _checked(lines)


def _checked(lines: list[str]) -> str:
    """The config's text; every value in it was checked, and here it is checked again that no line
    holds anything but printable ASCII (no newline can start a directive of its own)."""
    for line in lines:
        if not line.isascii() or not line.isprintable():
            raise InvalidHost(f"refusing a proxy config line with unexpected characters: {line!r}")
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
    parts = line.split(" ")
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
