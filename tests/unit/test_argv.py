"""Exact argv of every builder of the engine backend (docker and podman), and the seccomp profile."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import isol8.data
from isol8.backends.engine import argv as A
from isol8.backends.engine.argv import exec_argv, run_argv, sandbox_flags, standby_argv
from isol8.backends.engine.dialect import DOCKER, PODMAN, Dialect
from isol8.backends.engine.session_record import SESSION_CONTROL, session_control_argv
from isol8.core.sandbox import KEEPER, OWN_PIDS, SandboxPolicy, default_seccomp_profile

SECCOMP = str(Path(isol8.data.__file__).resolve().parent / "seccomp.json")
MANAGED = {"org.isol8.managed": "true", "org.isol8.runtime": None}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: A.opt("--x", None), []),
        (lambda: A.opt("--x", 0), ["--x", "0"]),
        (lambda: A.opt("--x", "a b"), ["--x", "a b"]),
        (lambda: A.flag("--x", True), ["--x"]),
        (lambda: A.flag("--x", False), []),
        (lambda: A.repeat("--x", []), []),
        (lambda: A.repeat("--x", ["a", 2]), ["--x", "a", "--x", "2"]),
        (lambda: A.label_filters({}), []),
        (
            lambda: A.label_filters({"a": "1", "b": None}),
            ["--filter", "label=a=1", "--filter", "label=b"],
        ),
    ],
)
def test_helpers(call: Callable[[], list[str]], expected: list[str]) -> None:
    assert call() == expected


def one(d: Dialect, id: str, call: Callable[[Dialect], list[str]], expected: list[str]) -> Any:
    return pytest.param(d, call, expected, id=f"{d.name}-{id}")


def both(id: str, call: Callable[[Dialect], list[str]], expected: Callable[[str], list[str]]) -> list[Any]:
    """The same call for docker and podman; expected(binary) is the argv."""
    return [one(d, id, call, expected(d.binary)) for d in (DOCKER, PODMAN)]


def full_build(d: Dialect) -> list[str]:
    return A.build_argv(
        d,
        tag="localhost/isol8:python",
        context="/ctx dir/python",
        dockerfile="/ctx dir/python/Dockerfile",
        build_args={"BASE_IMAGE": "docker.io/library/python:3.12", "EVIL": "x --privileged"},
        labels={"org.isol8.managed": "true", "org.isol8.build.hash": "abc"},
        iidfile="/tmp/isol8-build-1/iid",
        pull=True,
    )


BUILDERS = [
    one(DOCKER, "version", A.version_argv, ["docker", "version", "--format", "{{.Server.Version}}"]),
    one(PODMAN, "version", A.version_argv, ["podman", "version", "--format", "{{.Client.Version}}"]),
    *both(
        "image-inspect",
        lambda d: A.image_inspect_argv(d, ["isol8:python", "x:y"]),
        lambda exe: [exe, "image", "inspect", "isol8:python", "x:y"],
    ),
    *both(
        "images",
        lambda d: A.images_argv(d, MANAGED),
        lambda exe: [exe, "images", "-q", "--no-trunc",
                     "--filter", "label=org.isol8.managed=true", "--filter", "label=org.isol8.runtime"],
    ),
    *both("images-all", lambda d: A.images_argv(d, {}), lambda exe: [exe, "images", "-q", "--no-trunc"]),
    one(
        DOCKER,
        "build-minimal",
        lambda d: A.build_argv(d, tag="isol8:python", context="/ctx/python"),
        ["docker", "build", "--force-rm", "-t", "isol8:python", "/ctx/python"],
    ),
    one(
        PODMAN,
        "build-minimal",
        lambda d: A.build_argv(d, tag="isol8:python", context="/ctx/python"),
        ["podman", "build", "--force-rm", "-t", "localhost/isol8:python", "/ctx/python"],
    ),
    *both(
        "build-full",
        full_build,
        lambda exe: [
            exe, "build", "--force-rm", "--pull",
            "-f", "/ctx dir/python/Dockerfile",
            "--build-arg", "BASE_IMAGE=docker.io/library/python:3.12",
            "--build-arg", "EVIL=x --privileged",
            "--label", "org.isol8.managed=true",
            "--label", "org.isol8.build.hash=abc",
            "--iidfile", "/tmp/isol8-build-1/iid",
            "-t", "localhost/isol8:python",
            "/ctx dir/python",
        ],
    ),
    *both(
        "build-qualified-tag",
        lambda d: A.build_argv(d, tag="docker.io/me/isol8:python", context="."),
        lambda exe: [exe, "build", "--force-rm", "-t", "docker.io/me/isol8:python", "."],
    ),
    *both("rmi", lambda d: A.rmi_argv(d, ["abc", "def"]), lambda exe: [exe, "rmi", "abc", "def"]),
    *both(
        "ps",
        lambda d: A.ps_argv(d, {"org.isol8.run.id": "isol8-1"}),
        lambda exe: [exe, "ps", "-a", "-q", "--no-trunc", "--filter", "label=org.isol8.run.id=isol8-1"],
    ),
    *both(
        "container-inspect",
        lambda d: A.container_inspect_argv(d, ["c1", "c2"]),
        lambda exe: [exe, "container", "inspect", "c1", "c2"],
    ),
    one(DOCKER, "rm", lambda d: A.rm_argv(d, ["c1", "c2"]), ["docker", "rm", "-f", "c1", "c2"]),
    # podman's rm -f would stop politely first and wait 10 s for a PID 1 that ignores SIGTERM
    one(PODMAN, "rm", lambda d: A.rm_argv(d, ["c1", "c2"]), ["podman", "rm", "-f", "-t", "0", "--depend", "c1", "c2"]),
    *both("kill", lambda d: A.kill_argv(d, "isol8-1"), lambda exe: [exe, "kill", "isol8-1"]),
    *both("pull", lambda d: A.pull_argv(d, "r:5000/a:1"), lambda exe: [exe, "pull", "-q", "r:5000/a:1"]),
    *both("push", lambda d: A.push_argv(d, "r:5000/a:1"), lambda exe: [exe, "push", "-q", "r:5000/a:1"]),
    *both("tag", lambda d: A.tag_argv(d, "sha256:ab", "r/a:1"), lambda exe: [exe, "tag", "sha256:ab", "r/a:1"]),
    # a registry without verified TLS: podman is told; docker's daemon decides (insecure-registries)
    one(PODMAN, "pull-no-tls", lambda d: A.pull_argv(d, "r/a", tls_verify=False),
        ["podman", "pull", "-q", "--tls-verify=false", "r/a"]),
    one(PODMAN, "push-no-tls", lambda d: A.push_argv(d, "r/a", tls_verify=False),
        ["podman", "push", "-q", "--tls-verify=false", "r/a"]),
    one(DOCKER, "push-no-tls", lambda d: A.push_argv(d, "r/a", tls_verify=False), ["docker", "push", "-q", "r/a"]),
]  # fmt: skip


@pytest.mark.parametrize(("dialect", "call", "expected"), BUILDERS)
def test_builder_argv(dialect: Dialect, call: Callable[[Dialect], list[str]], expected: list[str]) -> None:
    argv = call(dialect)

    assert argv == expected
    assert all(type(arg) is str for arg in argv)


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("registry.example:5000/team/img:1", id="registry-with-port"),
        pytest.param("localhost:5000/img:1", id="localhost-with-port"),
    ],
)
def test_podman_build_keeps_a_tag_with_a_registry_port(tag: str) -> None:
    assert A.build_argv(PODMAN, tag=tag, context=".") == ["podman", "build", "--force-rm", "-t", tag, "."]


# ---- sandbox -------------------------------------------------------------------------------------

MIB = 1024 * 1024
LABELS = {"org.isol8.managed": "true", "org.isol8.run.id": "isol8-0123"}
COMMAND = ["-c", 'exec "$@"', "isol8", "--privileged", "python3", "/sandbox/main.py"]
IMAGE = "localhost/isol8:python"


def default_run_argv(d: Dialect, **changes: Any) -> list[str]:
    kwargs: dict[str, Any] = dict(
        name="isol8-0123",
        image=IMAGE,
        policy=SandboxPolicy(),
        labels=LABELS,
        command=COMMAND,
        engine_timeout_s=45,
    )
    return run_argv(d, **{**kwargs, **changes})


def expected_sandbox_flags(d: Dialect) -> list[str]:
    owner = "uid=1100,gid=1100" if d is DOCKER else "U"
    return [
        "--read-only",
        *(["--read-only-tmpfs=false"] if d is PODMAN else []),
        "--tmpfs", f"/sandbox:rw,exec,nosuid,nodev,size={512 * MIB},mode=0700,{owner}",
        "--tmpfs", f"/tmp:rw,noexec,nosuid,nodev,size={256 * MIB},mode=1777",
        "--shm-size", str(64 * MIB),
        "--user", "1100:1100",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--security-opt", f"seccomp={SECCOMP}",
        "--pids-limit", str(64 + OWN_PIDS),
        "--memory", str(512 * MIB),
        "--memory-swap", str(512 * MIB),
        "--cpus", "1",
        "--network", "none",
        "--ulimit", "nproc=32768:32768",
        "--ulimit", "nofile=4096:4096",
        "--ulimit", "msgqueue=0:0",
        "--tmpfs", "/sys/kernel:ro,nosuid,nodev,noexec,size=4k" + (",notmpcopyup" if d is PODMAN else ""),
    ]  # fmt: skip


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_sandbox_flags_exact(d: Dialect) -> None:
    assert sandbox_flags(d, SandboxPolicy()) == expected_sandbox_flags(d)


def expected_run_argv(d: Dialect, sandbox: list[str]) -> list[str]:
    return [
        d.binary, "run", "--rm", "-i",
        "--name", "isol8-0123",
        "--pull", "never",
        "--log-driver", "none",
        "--label", "org.isol8.managed=true",
        "--label", "org.isol8.run.id=isol8-0123",
        *sandbox,
        "--init",
        *(["--timeout", "45"] if d is PODMAN else []),
        "--workdir", "/sandbox",
        "--entrypoint", "/bin/bash",
        IMAGE,
        *COMMAND,
    ]  # fmt: skip


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_run_argv_exact(d: Dialect) -> None:
    assert default_run_argv(d) == expected_run_argv(d, expected_sandbox_flags(d))


@pytest.mark.parametrize(
    ("policy", "changed"),
    [
        (SandboxPolicy(memory="1g"), [("--memory", str(1024 * MIB)), ("--memory-swap", str(1024 * MIB))]),
        (SandboxPolicy(cpus=0.5), [("--cpus", "0.5")]),
        (SandboxPolicy(pids_limit=10), [("--pids-limit", str(10 + OWN_PIDS))]),
        (SandboxPolicy(shm_size="2m"), [("--shm-size", str(2 * MIB))]),
        (SandboxPolicy(network="host"), [("--network", "host")]),
        (SandboxPolicy(seccomp_profile="/etc/x.json"), [("--security-opt", "seccomp=/etc/x.json")]),
    ],
)  # fmt: skip
def test_policy_fields_reach_the_argv(policy: SandboxPolicy, changed: list[tuple[str, str]]) -> None:
    flags = sandbox_flags(DOCKER, policy)

    for name, value in changed:
        assert value in option_values(flags, name)


def option_values(flags: Sequence[str], name: str) -> list[str]:
    return [flags[i + 1] for i, arg in enumerate(flags[:-1]) if arg == name]


def tmpfs_options(flags: Sequence[str], target: str) -> list[str]:
    (spec,) = [v for v in option_values(flags, "--tmpfs") if v.startswith(target + ":")]
    return spec.split(":", 1)[1].split(",")


def size_of(options: list[str]) -> int:
    (size,) = [o for o in options if o.startswith("size=")]
    return int(size.removeprefix("size="))


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_hardening_regression(d: Dialect) -> None:
    """Every hardening flag of the default run, checked one by one so a missing one is named."""
    argv = default_run_argv(d)
    image_at = len(argv) - len(COMMAND) - 1
    assert argv[image_at] == IMAGE
    assert argv[image_at + 1 :] == COMMAND
    flags = argv[2:image_at]

    assert "--read-only" in flags
    if d is PODMAN:
        assert "--read-only-tmpfs=false" in flags
    else:
        assert not any(f.startswith("--read-only-tmpfs") for f in flags)  # docker rejects the flag

    sandbox = tmpfs_options(flags, "/sandbox")
    assert {"rw", "exec", "nosuid", "nodev"} <= set(sandbox)
    assert "noexec" not in sandbox
    assert size_of(sandbox) > 0
    if d is DOCKER:
        assert {"uid=1100", "gid=1100"} <= set(sandbox)
    else:
        assert "U" in sandbox
        assert not any(o.startswith(("uid=", "gid=")) for o in sandbox)  # podman rejects them
    tmp = tmpfs_options(flags, "/tmp")
    assert {"noexec", "nosuid", "nodev"} <= set(tmp)
    assert "exec" not in tmp
    assert size_of(tmp) > 0

    assert option_values(flags, "--user") == ["1100:1100"]
    assert option_values(flags, "--cap-drop") == ["ALL"]
    assert "--cap-add" not in flags
    assert "--privileged" not in flags
    security = option_values(flags, "--security-opt")
    assert "no-new-privileges" in security
    assert f"seccomp={SECCOMP}" in security
    assert Path(SECCOMP).is_file()
    assert not any("unconfined" in s for s in security)
    (pids,) = option_values(flags, "--pids-limit")
    assert int(pids) > 0
    (memory,) = option_values(flags, "--memory")
    assert int(memory) > 0
    assert option_values(flags, "--memory-swap") == [memory]
    (cpus,) = option_values(flags, "--cpus")
    assert float(cpus) > 0
    assert option_values(flags, "--network") == ["none"]
    assert "--init" in flags
    assert "--rm" in flags
    assert option_values(flags, "--pull") == ["never"]
    ulimits = dict(u.split("=", 1) for u in option_values(flags, "--ulimit"))
    assert ulimits["msgqueue"] == "0:0"
    assert int(ulimits["nproc"].split(":")[0]) >= 32768  # per uid across the host: out of the way
    assert tmpfs_options(flags, "/sys/kernel")[0] == "ro"
    assert "--env" not in flags  # the program's environment travels on stdin, out of the wrapper's reach
    assert option_values(flags, "--timeout") == (["45"] if d is PODMAN else [])


def test_run_argv_without_remove_keeps_the_container() -> None:
    assert "--rm" not in default_run_argv(DOCKER, remove=False)


def test_default_seccomp_profile_is_the_packaged_file() -> None:
    assert default_seccomp_profile() == SECCOMP


@pytest.mark.parametrize("kwargs", [{"seccomp_profile": "unconfined"}, {"network": "bridge"}])
def test_policy_refuses_loosenings_it_does_not_name(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SandboxPolicy(**kwargs)


# ---- seccomp profile -----------------------------------------------------------------------------

DENIED = [
    "unshare", "setns", "mount", "umount2", "ptrace", "bpf", "perf_event_open", "keyctl", "add_key",
    "request_key", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "clone3",
    "socketcall", "inotify_init", "inotify_init1",
]  # fmt: skip
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACE_MASK = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)


@pytest.fixture(scope="module")
def profile() -> dict[str, Any]:
    return json.loads(Path(SECCOMP).read_text(encoding="utf-8"))


def allow_rules(profile: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"]


def test_seccomp_default_action_denies(profile: dict[str, Any]) -> None:
    assert profile["defaultAction"] not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
    assert len(allow_rules(profile)) > 10  # a real allow-list, not an empty one


@pytest.mark.parametrize("syscall", DENIED)
def test_seccomp_never_allows(profile: dict[str, Any], syscall: str) -> None:
    allowing = [rule for rule in allow_rules(profile) if syscall in rule["names"]]

    assert allowing == []


def test_seccomp_allows_clone_only_without_namespace_flags(profile: dict[str, Any]) -> None:
    clone_rules = [rule for rule in allow_rules(profile) if "clone" in rule["names"]]

    assert clone_rules, "clone must stay allowed (threads, fork)"
    for rule in clone_rules:
        assert rule["args"] == [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": NAMESPACE_MASK, "valueTwo": 0}]


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_standby_argv_exact(d: Dialect) -> None:
    flags = expected_sandbox_flags(d)
    at = flags.index("--user")
    assert flags[at : at + 4] == ["--user", "1100:1100", "--cap-drop", "ALL"]
    keeper = [
        *flags[:at],
        "--user",
        "0:0",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "KILL",
        "--cap-add",
        "CHOWN",
        "--tmpfs",
        "/run/isol8:rw,noexec,nosuid,nodev,size=1m,mode=0700",  # root's own: a session's record
        *flags[at + 4 :],
    ]
    assert standby_argv(d, name="isol8-warm", image=IMAGE, policy=SandboxPolicy(), labels=LABELS) == [
        d.binary, "run", "-d",
        "--name", "isol8-warm", "--pull", "never", "--log-driver", "none",
        "--label", "org.isol8.managed=true", "--label", "org.isol8.run.id=isol8-0123",
        *keeper,
        "--workdir", "/sandbox", "--entrypoint", "/bin/bash", IMAGE, "-c", KEEPER,
    ]  # fmt: skip
    assert "--init" not in standby_argv(d, name="x", image=IMAGE, policy=SandboxPolicy(), labels={})
    assert KEEPER.startswith("chown 1100:1100 /sandbox ")


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_exec_argv_exact_with_user_values_as_single_elements(d: Dialect) -> None:
    """Executions run as the sandbox user, never as the standby container's root keeper."""
    assert exec_argv(d, name="isol8-warm", command=COMMAND) == [
        d.binary, "exec", "-i", "--user", "1100:1100", "--workdir", "/sandbox", "isol8-warm", "/bin/bash", *COMMAND,
    ]  # fmt: skip


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_session_control_argv_exact_runs_as_root_with_isol8s_own_arguments(d: Dialect) -> None:
    assert session_control_argv(d, name="isol8-s", verb="claim", args=["ab12", "960"]) == [
        d.binary, "exec", "-i", "--user", "0:0", "isol8-s", "/bin/bash", "-c", SESSION_CONTROL,
        "isol8", "claim", "ab12", "960",
    ]  # fmt: skip
    assert "\nd=/run/isol8\n" in SESSION_CONTROL  # the root-only tmpfs of standby_argv


@pytest.mark.parametrize("d", [DOCKER, PODMAN], ids=lambda d: d.name)
def test_installer_argv_is_a_run_on_the_engines_default_network(d: Dialect) -> None:
    """A run-time install's installer: every hardening flag of a run, and no --network at all."""
    without_network = [f for f in expected_sandbox_flags(d) if f not in ("--network", "none")]
    assert default_run_argv(d, network=A.ENGINE_NETWORK) == expected_run_argv(d, without_network)


@pytest.mark.parametrize(
    ("policy", "keeper"),
    [
        (SandboxPolicy(network="host"), False),  # an installer never widens a policy's own network
        (SandboxPolicy(), True),  # nor is one kept as a standby container
    ],
)
def test_installer_network_only_for_a_one_shot_policy_without_network(policy: SandboxPolicy, keeper: bool) -> None:
    with pytest.raises(ValueError, match="installer"):
        sandbox_flags(DOCKER, policy, keeper=keeper, network=A.ENGINE_NETWORK)


# ---- endpoints -----------------------------------------------------------------------------------

from isol8.backends import reaper  # noqa: E402
from isol8.backends.engine.dialect import Endpoint, endpoint_from, with_endpoint  # noqa: E402
from isol8.errors import UsageError  # noqa: E402


@pytest.mark.parametrize(
    ("dialect", "endpoint", "env", "flags", "from_image"),
    [
        (DOCKER, Endpoint(), {}, (), False),
        (DOCKER, Endpoint(context="ci"), {}, ("--context=ci",), False),
        (DOCKER, Endpoint(host="ssh://u@box"), {}, ("--host=ssh://u@box",), False),
        (
            DOCKER,
            Endpoint(host="tcp://box:2376", tls="/c/"),
            {},
            (
                "--host=tcp://box:2376",
                "--tlsverify",
                "--tlscacert=/c/ca.pem",
                "--tlscert=/c/cert.pem",
                "--tlskey=/c/key.pem",
            ),
            False,
        ),
        (DOCKER, Endpoint(), {"DOCKER_HOST": "ssh://box"}, (), False),  # docker's client reads the profile itself
        (PODMAN, Endpoint(), {}, (), False),
        (PODMAN, Endpoint(context="box"), {}, ("--connection=box",), True),
        (
            PODMAN,
            Endpoint(host="ssh://u@box/run/p.sock", identity="/k"),
            {},
            ("--url=ssh://u@box/run/p.sock", "--identity=/k"),
            True,
        ),
        (PODMAN, Endpoint(), {"CONTAINER_HOST": "unix:///s.sock"}, (), True),
        (PODMAN, Endpoint(), {"CONTAINER_CONNECTION": "box"}, (), True),
    ],
)
def test_an_endpoint_is_options_before_every_command(
    dialect: Dialect, endpoint: Endpoint, env: dict[str, str], flags: tuple[str, ...], from_image: bool
) -> None:
    d = with_endpoint(dialect, endpoint, env)
    assert (d.global_flags, d.seccomp_from_image) == (flags, from_image)
    assert A.ps_argv(d, {"a": "1"}) == [dialect.binary, *flags, "ps", "-a", "-q", "--no-trunc", "--filter", "label=a=1"]
    run = A.run_argv(d, name="n", image="i", policy=SandboxPolicy(), labels={}, command=["-c", "x"])
    assert run[: len(flags) + 2] == [dialect.binary, *flags, "run"]
    seccomp = ["--seccomp-policy", "image"] if from_image else ["--security-opt", f"seccomp={SECCOMP}"]
    at = run.index("no-new-privileges") + 1
    assert run[at : at + 2] == seccomp
    assert reaper.watcher_argv(d)[4:] == [f"org.isol8.run.owner={reaper._owner}", dialect.binary, *flags]


def test_a_remote_podman_still_takes_a_configured_profile_as_a_path_on_its_host() -> None:
    d = with_endpoint(PODMAN, Endpoint(host="unix:///s.sock"), {})
    run = A.run_argv(d, name="n", image="i", policy=SandboxPolicy(seccomp_profile="/etc/p.json"), labels={}, command=[])
    assert "--seccomp-policy" not in run and "seccomp=/etc/p.json" in run


@pytest.mark.parametrize(
    ("values", "engine", "endpoint"),
    [
        ({}, None, Endpoint()),
        ({"context": None, "host": ""}, None, Endpoint()),
        ({"context": "ci"}, "docker", Endpoint(context="ci")),
        ({"host": "ssh://b", "tlsCertPath": "/c"}, "docker", Endpoint(host="ssh://b", tls="/c")),
        ({"connection": "box"}, "podman", Endpoint(context="box")),
        ({"url": "unix:///s", "identity": "/k"}, "podman", Endpoint(host="unix:///s", identity="/k")),
    ],
)
def test_endpoint_keys_name_their_engine(values: dict[str, str | None], engine: str | None, endpoint: Endpoint) -> None:
    assert endpoint_from(values) == (engine, endpoint)


@pytest.mark.parametrize(
    ("dialect", "endpoint", "says"),
    [
        (DOCKER, Endpoint(context="a", host="ssh://b"), "--context and --host name two endpoints"),
        (PODMAN, Endpoint(context="a", host="unix:///s"), "--connection and --url name two endpoints"),
        (PODMAN, Endpoint(tls="/c"), "backend.tlsCertPath is docker's, not podman's"),
        (DOCKER, Endpoint(identity="/k"), "backend.identity is podman's, not docker's"),
    ],
)
def test_contradicting_endpoints_are_refused(dialect: Dialect, endpoint: Endpoint, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        with_endpoint(dialect, endpoint, {})


def test_an_endpoint_value_that_looks_like_an_option_stays_a_value() -> None:
    """A config's `context: --tlsverify` must not become an option of the engine's client."""
    d = with_endpoint(DOCKER, Endpoint(context="--tlsverify"), {})
    assert A.version_argv(d)[:2] == ["docker", "--context=--tlsverify"]
