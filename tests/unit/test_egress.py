"""A filtered network as data (isol8.core.egress) and its argv (backends/engine/argv.py): every value pinned."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from isol8.backends.engine import argv as A
from isol8.backends.engine.dialect import DOCKER, PODMAN, Dialect
from isol8.config import DEFAULTS, Config
from isol8.config.layers import Layer, merge
from isol8.core.egress import (
    BLOCKED,
    Decision,
    Egress,
    HostRule,
    InvalidHost,
    blocked_ranges,
    covered,
    host_regex,
    host_rule,
    make_egress,
    parse_log,
    proxy_env,
    squid_config,
)
from isol8.core.plan import egress_for, plan_run
from isol8.core.sandbox import SandboxPolicy
from isol8.errors import ConfigError, UsageError
from isol8.runtimes import get


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [
        ("api.example.com", r"^api\.example\.com$"),
        ("API.Example.COM", r"^api\.example\.com$"),
        ("api.example.com.", r"^api\.example\.com$"),
        ("*.example.com", r"^([a-z0-9_-]+\.)+example\.com$"),
        ("10.1.2.3", r"^10\.1\.2\.3$"),
        ("my_host-1", r"^my_host-1$"),
        (r"^api\.openai\.com$", r"^api\.openai\.com$"),
        (r"^(a|b)\.example\.com$", r"^((a|b)\.example\.com)$"),
        (r"^[a-z]+\.example\.com$", r"^([a-z]+\.example\.com)$"),
        (r"^a\.test|.*$", r"^(a\.test|.*)$"),  # the alternation stays between the anchors
        ("api.example.com:8443", r"^api\.example\.com$"),
    ],
)
def test_a_host_pattern_becomes_an_anchored_regex(pattern: str, regex: str) -> None:
    assert host_regex(pattern) == regex


def test_an_alternation_cannot_unanchor_a_regex() -> None:
    assert re.search(host_regex(r"^allowed\.test|.*$"), "evil.test")  # as the same regex would fullmatch
    for pattern in (r"^api\.allowed\.test|www\.allowed\.test$", "^|$", "^a|$"):
        regex = host_regex(pattern)
        assert not re.search(regex, "evil.test"), pattern
        assert not re.search(regex, "api.allowed.test.attacker.example"), pattern
        assert not re.search(regex, "evilwww.allowed.test"), pattern


def test_a_host_is_reached_on_the_web_ports_unless_its_pattern_names_one() -> None:
    assert host_rule("a.test") == HostRule(r"^a\.test$", (80, 443), "a.test")
    assert host_rule("a.test:8443") == HostRule(r"^a\.test$", (8443,), "a.test")
    assert host_rule("*.a.test:25").ports == (25,)
    assert host_rule(r"^(x|y)\.a\.test$:8080") == HostRule(r"^((x|y)\.a\.test)$", (8080,), None)
    for bad in ("a.test:0", "a.test:65536", "a.test:99999", "a.test:", "a.test:http"):
        with pytest.raises(InvalidHost):
            host_rule(bad)
    with pytest.raises(InvalidHost, match="every port"):
        make_egress([], ["a.test:8443"])


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        " ",
        "a b.com",
        "a.com\nhttp_access allow all",
        "a.com#",
        '"a.com"',
        "-a.com",
        "a-.com",
        "a..com",
        "*",
        "*.",
        "**.a.com",
        "a.*.com",
        "x" * 64 + ".com",
        ".".join(["a" * 60] * 5),
        "api.example.com/path",
        "user@api.example.com",
        "[::1]",
        "::1",
        "bücher.de",
        r"^api\.example\.com",  # not anchored at the end: api.example.com.evil.test would match
        r"api\.example\.com$",
        r"^(?!x)a\.com$",
        r"^\d+\.com$",
        r"^a+?\.com$",
        "^$",
        r"^a\.com$ http_access allow all",
        r"^a\.com$\nx",
        "^a.com$#",
        r"^[a-z\]$",
        r"^(a$",
    ],
)
def test_a_host_pattern_that_cannot_be_enforced_as_written_is_refused(pattern: str) -> None:
    with pytest.raises(InvalidHost):
        host_regex(pattern)


def test_a_wildcard_matches_the_names_below_it_only() -> None:
    regex = host_regex("*.example.com")
    assert re.fullmatch(regex, "a.example.com") and re.fullmatch(regex, "a.b.example.com")
    assert not re.fullmatch(regex, "example.com")
    assert not re.fullmatch(regex, "a.example.com.evil.test")
    assert not re.fullmatch(regex, "aexample.com")


@pytest.mark.parametrize(
    ("asked", "ceiling", "ok"),
    [
        ("api.example.com", ["api.example.com"], True),
        ("API.example.com.", ["api.example.com"], True),
        ("a.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("*.example.com", ["*.example.com"], True),
        ("*.a.example.com", ["*.example.com"], False),  # only the same pattern, never a narrower guess
        ("*.example.com", ["a.example.com"], False),
        (r"^api\.example\.com$", ["api.example.com"], True),  # one name, written as a regex
        ("api.example.com", [r"^api\.example\.com$"], True),
        ("api.example.com:8443", ["api.example.com"], False),  # another port
        ("api.example.com:443", ["api.example.com"], True),
        ("api.example.com", ["api.example.com:8443"], False),
        ("api.example.com:8443", ["api.example.com:8443"], True),
        (r"^api\.allowed\.test|www\.allowed\.test$", [r"^api\.allowed\.test|www\.allowed\.test$"], True),
        (r"^(api|evil)\.example\.com$", ["api.example.com"], False),
        (r"^.*$", ["api.example.com"], False),
        ("api.example.com", [r"^(api|www)\.example\.com$"], True),
        ("evil.test", [], False),
    ],
)
def test_a_request_stays_within_the_servers_allowed_hosts(asked: str, ceiling: list[str], ok: bool) -> None:
    assert covered(asked, ceiling) is ok


def test_an_egress_is_checked_whole() -> None:
    egress = make_egress(
        ["a.test", "a.test", "*.b.test"],
        ["c.test"],
        allow_private=["10.1.2.3", " 172.16.0.0/12 "],
        hosts={"A.test": "10.1.2.3"},
    )
    assert egress == Egress(
        ("a.test", "*.b.test"), ("c.test",), ("10.1.2.3/32", "172.16.0.0/12"), (("a.test", "10.1.2.3"),)
    )
    for bad in (
        dict(allow=["a b"]),
        dict(allow=[], deny=["^x"]),
        dict(allow=[], allow_private=["everything"]),
        dict(allow=[], allow_private=["10.0.0.0/8 all"]),
        dict(allow=[], allow_private=["fe80::1%1\nhttp_access allow all"]),  # a scope ID holds anything
        dict(allow=[], allow_private=["fe80::1%eth0"]),
        dict(allow=[], hosts={"a.test": "fe80::1%1\nx"}),
        dict(allow=[], hosts={"a b": "10.0.0.1"}),
        dict(allow=[], hosts={"a.test": "10.0.0.1 b.test"}),
        dict(allow=[], hosts={"a.test": "host-gateway"}),
    ):
        with pytest.raises(InvalidHost):
            make_egress(**bad)  # type: ignore[arg-type]


COMMON = """http_port 127.0.0.1:3128
pid_filename none
pinger_enable off
cache deny all
cache_mem 0 MB
max_filedescriptors 1024
visible_hostname isol8-proxy
logformat isol8 %ts.%03tu %#rm %#ru %>Hs %{isol8}note %<a
access_log stdio:/dev/stdout isol8
cache_log stdio:/dev/stderr
logfile_rotate 0
shutdown_lifetime 0 seconds
via off
forwarded_for delete
httpd_suppress_version_string on
acl connect method CONNECT
acl web proto HTTP
acl why_allowed annotate_transaction isol8=allowed
acl why_denied annotate_transaction isol8=denied
acl why_not_allowed annotate_transaction isol8=not-allowed
acl why_private_address annotate_transaction isol8=private-address
http_access deny manager why_not_allowed
http_access deny !connect !web why_not_allowed
"""


def test_the_proxy_config_refuses_before_it_resolves_and_then_checks_every_address() -> None:
    egress = make_egress(["a.test", "*.b.test:8443"], ["x.b.test"], allow_private=["10.9.0.0/16"])
    config = squid_config(egress)
    assert config.startswith(COMMON)
    rest = config[len(COMMON) :].splitlines()
    assert rest[:10] == [
        "acl denied dstdom_regex -n -i ^x\\.b\\.test$",
        "http_access deny denied why_denied",
        "acl host_0 dstdom_regex -n -i ^a\\.test$",
        "acl port_0 port 80 443",
        "acl dest_0 all-of host_0 port_0",
        "acl host_1 dstdom_regex -n -i ^([a-z0-9_-]+\\.)+b\\.test$",
        "acl port_1 port 8443",
        "acl dest_1 all-of host_1 port_1",
        "acl allowed any-of dest_0 dest_1",
        "http_access deny !allowed why_not_allowed",
    ]
    blocked = rest[10].split()
    assert blocked[:3] == ["acl", "blocked_address", "dst"]
    assert "10.9.0.0/16" not in blocked and "10.0.0.0/8" not in blocked
    assert {"10.0.0.0/13", "10.8.0.0/16", "10.10.0.0/15", "172.16.0.0/12", "::/96"} <= set(blocked)
    assert rest[11:] == [
        "http_access deny blocked_address why_private_address",
        "http_access allow allowed why_allowed",
        "http_access deny all why_not_allowed",
    ]


def test_a_name_with_an_opened_and_another_private_address_is_still_refused() -> None:
    """squid's dst matches when any address does: the blocked list is BLOCKED less allowPrivate's
    ranges, not BLOCKED with an exception for names that have an allowed address."""
    import ipaddress

    blocked = [ipaddress.ip_network(r) for r in blocked_ranges(["10.1.2.3/32"])]
    assert not any(ipaddress.ip_address("10.1.2.3") in n for n in blocked)
    assert any(ipaddress.ip_address("10.1.2.4") in n for n in blocked)
    assert "private_ok" not in squid_config(make_egress(["a.test"], allow_private=["10.1.2.3"]))
    assert blocked_ranges(["0.0.0.0/0", "::/0"]) == []
    assert "blocked_address" not in squid_config(make_egress(["a.test"], allow_private=["0.0.0.0/0", "::/0"]))


def test_an_empty_allowlist_allows_nothing() -> None:
    config = squid_config(make_egress([]))
    assert config == COMMON + "http_access deny all why_not_allowed\n"
    assert "http_access allow" not in config


def test_the_blocked_ranges_cover_the_private_and_metadata_addresses() -> None:
    import ipaddress

    networks = [ipaddress.ip_network(r) for r in BLOCKED]
    for address in ("127.0.0.1", "10.2.3.4", "172.17.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"):
        assert any(ipaddress.ip_address(address) in n for n in networks if n.version == 4), address
    for address in ("::1", "fd00::1", "fe80::1", "fd00:ec2::254", "64:ff9b::a00:1"):
        assert any(ipaddress.ip_address(address) in n for n in networks if n.version == 6), address
    # (squid reads an IPv4-mapped ::ffff:a.b.c.d as the IPv4 address: the IPv4 ranges hold for it)
    for address in ("192.0.2.2", "203.0.113.80", "::10.0.0.1", "2002:a00:1::", "2001::1"):
        assert any(ipaddress.ip_address(address) in n for n in networks), address
    for address in ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"):
        assert not any(
            ipaddress.ip_address(address) in n for n in networks if n.version == ipaddress.ip_address(address).version
        )


def test_a_log_line_is_a_decision_and_anything_else_is_not() -> None:
    assert parse_log("1796285133.716 GET http://a.test:8099/ 200 allowed 172.17.0.1") == Decision(
        1796285133.716, "GET", "http://a.test:8099/", 200, "allowed", "172.17.0.1"
    )
    assert parse_log("1796285133.787 CONNECT b.test:443 403 not-allowed -") == Decision(
        1796285133.787, "CONNECT", "b.test:443", 403, "not-allowed", None
    )
    for line in (
        "",
        "2026/12/03 08:00:21| Starting Squid",
        "1.0 GET u 400 - -",
        "x GET u 200 allowed -",
        "1.0 GET u 200 allowed - extra",
    ):
        assert parse_log(line) is None, line


def test_the_sandbox_is_pointed_at_the_proxy_on_its_loopback() -> None:
    env = proxy_env()
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
    ):
        assert env[name] == "http://127.0.0.1:3128"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1"


LABELS = {"org.isol8.run.id": "isol8-1-proxy"}


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_the_proxy_and_relay_run_without_privileges(d: Dialect) -> None:
    shared = [
        "--name",
        "NAME",
        "--pull",
        "never",
        "--log-driver",
        "none",
        "--label",
        "org.isol8.run.id=isol8-1-proxy",
        "--init",
        "--read-only",
        *(["--read-only-tmpfs=false"] if d is PODMAN else []),
        "--user",
        "13:13",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "256",
        "--memory",
        "MEM",
        "--memory-swap",
        "MEM",
        "--cpus",
        "1",
        "--volume",
        "isol8-1-egress:/run/isol8-egress",
    ]

    def expected(name: str, memory: str) -> list[str]:
        return [{"NAME": name, "MEM": memory}.get(a, a) for a in shared]

    assert A.proxy_argv(
        d, name="isol8-1-proxy", image="IMG", labels=LABELS, volume="isol8-1-egress", hosts=[("a.test", "10.0.0.1")]
    ) == [
        d.binary,
        "run",
        "-i",
        *expected("isol8-1-proxy", "256m"),
        "--tmpfs",
        "/var/spool/squid:rw,noexec,nosuid,nodev,size=16m",
        "--tmpfs",
        "/run/squid:rw,noexec,nosuid,nodev,size=1m",
        "--add-host",
        "a.test:10.0.0.1",
        "IMG",
        "proxy",
    ]
    assert A.relay_argv(d, name="isol8-1-relay", image="IMG", labels=LABELS, volume="isol8-1-egress") == [
        d.binary,
        "run",
        *expected("isol8-1-relay", "64m"),
        "--network",
        "none",
        "IMG",
        "relay",
    ]
    assert A.volume_create_argv(d, name="v", labels={"k": "1"}) == [d.binary, "volume", "create", "--label", "k=1", "v"]
    assert A.volume_rm_argv(d, ["v"]) == [d.binary, "volume", "rm", "-f", "v"]
    assert A.volumes_argv(d, {"k": None}) == [d.binary, "volume", "ls", "-q", "--filter", "label=k"]


def test_a_filtered_sandbox_runs_on_its_relays_network_and_nothing_else_can() -> None:
    filtered = SandboxPolicy(network="filtered", egress=make_egress(["a.test"]))
    flags = A.sandbox_flags(DOCKER, filtered, network="container:isol8-1-relay")
    assert flags[flags.index("--network") + 1] == "container:isol8-1-relay"
    with pytest.raises(ValueError):
        A.sandbox_flags(DOCKER, filtered)  # never "--network filtered"
    with pytest.raises(ValueError):
        A.sandbox_flags(DOCKER, SandboxPolicy(), network="container:x")
    with pytest.raises(ValueError):
        SandboxPolicy(network="filtered")
    with pytest.raises(ValueError):
        SandboxPolicy(network="none", egress=make_egress([]))


def _config(**data: Any) -> Config:
    return Config(merge(DEFAULTS, [Layer("test", data)])[0])


def test_flags_replace_the_configs_allowlist_and_add_to_its_denylist() -> None:
    config = _config(network={"whitelist": ["a.test"], "blacklist": ["x.test"], "allowPrivate": ["10.0.0.0/8"]})
    assert egress_for("filtered", config) == Egress(("a.test",), ("x.test",), ("10.0.0.0/8",), ())
    assert egress_for("filtered", config, ["b.test"], ["y.test"]) == Egress(
        ("b.test",), ("x.test", "y.test"), ("10.0.0.0/8",), ()
    )
    assert egress_for("filtered", config, []) == Egress((), ("x.test",), ("10.0.0.0/8",), ())
    assert egress_for("none", config) is None
    with pytest.raises(UsageError, match="filtered network"):
        egress_for("none", config, ["a.test"])
    with pytest.raises(UsageError, match="filtered network"):
        egress_for("host", config, None, ["a.test"])


def test_a_filtered_run_cannot_be_kept() -> None:
    with pytest.raises(UsageError, match="cannot be kept"):
        plan_run(_config(), {"network": "filtered"}, runtime=get("python"), code=b"1", persist=True)


def test_the_config_checks_every_host_it_holds(tmp_path: Path) -> None:
    from isol8.config import load_config

    for bad in (
        {"network": {"whitelist": ["a b"]}},
        {"network": {"blacklist": ["^x"]}},
        {"server": {"allowedHosts": ["*"]}},
        {"network": {"hosts": {"a.test": 1}}},
        {"defaults": {"network": "filtered!"}},
    ):
        path = tmp_path / "c.json"
        import json

        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            load_config(str(path), cwd=str(tmp_path), home=str(tmp_path), env={})


def test_the_wire_carries_a_filtered_network_both_ways() -> None:
    from isol8.core.runner import RunResult
    from isol8.frontends.wire import parse_request, request_body, result_json

    config = _config(network={"blacklist": ["x.test"]})
    request = plan_run(config, {"network": "filtered"}, allow=["a.test"], runtime=get("python"), code=b"1")
    body = request_body(request, limits=[], install=[])
    assert body["options"] == {
        "network": "filtered",
        "networkFilter": {"whitelist": ["a.test"], "blacklist": ["x.test"]},
    }
    asked = parse_request(body)
    assert (asked.limits, asked.allow, asked.deny) == ({"network": "filtered"}, ("a.test",), ("x.test",))
    assert parse_request({"request": {"code": "1"}}).allow is None

    result = RunResult("", "", 0, False, False, False, 1, "python", "i", "c", b"", b"")
    assert "network" not in result_json(result)
    logged = result._replace(network_log=(Decision(1.5, "CONNECT", "a.test:443", 200, "allowed", "10.0.0.1"),))
    assert result_json(logged)["network"] == {
        "log": [
            {
                "time": 1.5,
                "method": "CONNECT",
                "target": "a.test:443",
                "status": 200,
                "verdict": "allowed",
                "address": "10.0.0.1",
            }
        ]
    }
    assert result_json(result._replace(network_log=()))["network"] == {"log": []}
