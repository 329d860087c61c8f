"""The Kubernetes backend without a cluster: how it is chosen, kubectl's failures typed, kubectl's
own exit report kept out of the program's stderr, the order of a run's kubectl calls (pinned
with pytest-subprocess), and `run --dry-run`, whose manifests pass the schema and the restricted
Pod Security Standard. The real runs are tests/integration/test_kubernetes.py's."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from isol8.backends import open_backend
from isol8.backends.kubernetes import argv as K
from isol8.backends.kubernetes import session_record as R
from isol8.backends.kubernetes.backend import KubeBackend
from isol8.backends.kubernetes.classify import classify
from isol8.backends.kubernetes.manifest import KubeSettings
from isol8.backends.kubernetes.pods import PodRun
from isol8.config import load_config
from isol8.core.sandbox import ContainerSpec, SandboxPolicy
from isol8.errors import (
    ContainerNameInUse,
    ContainerNotFound,
    EngineError,
    EngineNotFound,
    EnginePermissionDenied,
    EngineTimeout,
    EngineUnavailable,
    ImageMissing,
    UsageError,
)
from tests.conftest import CliResult, refuse_processes
from tests.unit.test_kube_manifest import SCHEMA_VERSION, restricted_violations

RunCli = Callable[..., CliResult]
SETTINGS = KubeSettings(namespace="sandboxes")


# ---- choosing it ----------------------------------------------------------------------------------


def test_kind_kubernetes_opens_pods_through_kubectl_with_the_configs_keys() -> None:
    kube = {"context": "prod", "namespace": "sandboxes", "runtimeClassName": "gvisor", "imagePullSecrets": ["r"]}
    backend = open_backend(None, {}, {}, kind="kubernetes", kube=kube)
    assert isinstance(backend, KubeBackend)
    assert backend.settings == KubeSettings("sandboxes", "prod", "gvisor", ("r",), None)
    assert (backend.name, backend.endpoint) == ("kubernetes", "context prod, namespace sandboxes")


def test_isol8_backend_in_the_environment_chooses_it() -> None:
    assert isinstance(open_backend(None, {}, {"ISOL8_BACKEND": "kubernetes"}), KubeBackend)


@pytest.mark.parametrize(
    ("engine", "endpoint", "kind", "fragment"),
    [
        ("docker", {}, "kubernetes", "runs no engine"),
        (None, {"host": "ssh://box"}, "kubernetes", "runs no engine"),
        (None, {}, "nomad", "backend 'nomad': choose one of engine, kubernetes"),
    ],
)
def test_what_cannot_go_together_is_refused(
    engine: str | None, endpoint: dict[str, str], kind: str, fragment: str
) -> None:
    with pytest.raises(UsageError, match=fragment):
        open_backend(engine, endpoint, {}, kind=kind)


def test_the_configs_context_is_kubectls_under_kind_kubernetes(tmp_path: Path) -> None:
    path = tmp_path / "isol8.json"
    path.write_text(json.dumps({"backend": {"kind": "kubernetes", "context": "prod", "namespace": "ns"}}))
    settings = load_config(str(path), user=False).backend
    assert (settings.kind, settings.kube["context"], settings.kube["namespace"]) == ("kubernetes", "prod", "ns")
    assert "context" not in settings.endpoint  # not docker's
    path.write_text(json.dumps({"backend": {"context": "remote"}}))
    assert load_config(str(path), user=False).backend.endpoint["context"] == "remote"


# ---- kubectl's failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ('Error from server (NotFound): pods "isol8-1" not found', ContainerNotFound),
        ('Error from server (AlreadyExists): pods "isol8-1" already exists', ContainerNameInUse),
        ('Error from server (Forbidden): pods is forbidden: User "x" cannot create', EnginePermissionDenied),
        (
            "The connection to the server localhost:8080 was refused - did you specify the right host?",
            EngineUnavailable,
        ),
        ("Unable to connect to the server: dial tcp: lookup k8s.example.com: no such host", EngineUnavailable),
        ('error: context "prod" does not exist', EngineUnavailable),
        ("error: timed out waiting for the condition on pods/isol8-1", EngineTimeout),
        ("error: something else", EngineError),
    ],
)
def test_kubectls_failures_are_typed(stderr: str, kind: type[EngineError]) -> None:
    error = classify(["kubectl", "get"], 1, "", stderr + "\n")
    assert type(error) is kind and error.message == stderr


def test_no_kubectl_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EngineNotFound) as caught:
        KubeBackend(SETTINGS).version()
    assert "pip install kubectl" in caught.value.hint


# ---- kubectl's own report ------------------------------------------------------------------------


class _Pieces:
    argv = ("kubectl",)

    def __init__(self, pieces: list[tuple[str, bytes]]) -> None:
        self.pieces = pieces

    def chunks(self, deadline: object = None) -> Iterator[tuple[str, bytes]]:
        yield from self.pieces


@pytest.mark.parametrize(
    ("pieces", "passed"),
    [
        ([("stderr", b"oops\ncommand terminated with exit code 3\n")], b"oops\n"),
        ([("stderr", b"x\ncommand terminated"), ("stderr", b" with exit code 137"), ("stderr", b"\n")], b"x\n"),
        ([("stderr", b"command"), ("stdout", b"a"), ("stderr", b" is mine\n")], b"command is mine\n"),
        ([("stderr", b"command terminated with exit code 3\nmore\n")], b"command terminated with exit code 3\nmore\n"),
        ([("stderr", b"comm")], b"comm"),
    ],
    ids=["whole", "in-pieces", "a-program-line", "not-last", "cut-short"],
)
def test_kubectls_exit_report_is_not_the_programs_stderr(pieces: list[tuple[str, bytes]], passed: bytes) -> None:
    run = PodRun(KubeBackend(SETTINGS), "isol8-1", _Pieces(pieces), remove=False)  # type: ignore[arg-type]
    assert b"".join(data for stream, data in run.chunks() if stream == "stderr") == passed


# ---- a run's kubectl calls -------------------------------------------------------------------------


def _spec(network: str = "none") -> ContainerSpec:
    return ContainerSpec("isol8-1", "reg.example:5000/isol8/python:1", SandboxPolicy(network=network), {})


def _pod_status(reason: str) -> str:
    state = {"waiting": {"reason": reason, "message": "no such image"}}
    return json.dumps({"status": {"phase": "Pending", "containerStatuses": [{"state": state}]}})


def test_pods_of_none_apply_the_policy_once_then_are_created_and_waited_for(fp: Any) -> None:
    backend = KubeBackend(SETTINGS)
    fp.register(K.apply_argv(SETTINGS), stdout="networkpolicy.networking.k8s.io/isol8-network-none\n")
    fp.register(["/bin/sh", "-c", fp.any()])  # the reaper
    for _ in range(2):
        fp.register(K.create_argv(SETTINGS), stdout="pod/isol8-1\n")
        fp.register(K.wait_ready_argv(SETTINGS, "isol8-1", 5), stdout="pod/isol8-1 condition met\n")
    assert backend.start_standby(_spec()) == backend.start_standby(_spec()) == "isol8-1"
    assert fp.call_count(K.apply_argv(SETTINGS)) == 1  # applied once per process
    assert fp.call_count(K.create_argv(SETTINGS)) == 2
    backend.disown()


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"])
def test_an_image_the_nodes_cannot_pull_is_missing_and_its_pod_deleted(fp: Any, reason: str) -> None:
    backend = KubeBackend(SETTINGS)
    fp.register(["/bin/sh", "-c", fp.any()])
    fp.register(K.create_argv(SETTINGS), stdout="pod/isol8-1\n")
    fp.register(K.wait_ready_argv(SETTINGS, "isol8-1", 5), returncode=1, stderr="error: timed out waiting\n")
    fp.register(K.get_pod_argv(SETTINGS, "isol8-1"), stdout=_pod_status(reason))
    fp.register(K.delete_argv(SETTINGS, ["isol8-1"]))
    with pytest.raises(ImageMissing, match=f"cannot be pulled by the cluster \\({reason}: no such image\\)"):
        backend.run(_spec("host"), ["-c", "true"], stdin=[], remove=True, backstop_s=10)
    assert fp.call_count(K.delete_argv(SETTINGS, ["isol8-1"])) == 1
    backend.disown()


def test_what_a_cluster_cannot_do_is_said() -> None:
    backend = KubeBackend(SETTINGS)
    with pytest.raises(UsageError, match="builds no images"):
        backend.build(tag="x", context=".")


# ---- run --dry-run --------------------------------------------------------------------------------


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    refuse_processes(monkeypatch)


def test_dry_run_prints_manifests_the_schema_and_the_restricted_standard_accept(
    run_cli: RunCli, no_processes: None
) -> None:
    status, out, err = run_cli("--backend", "kubernetes", "run", "--dry-run", "--json", "-e", "print('the-program')")
    assert status == 0, err
    planned = json.loads(out)
    verbs = [argv[argv.index("--namespace=default") + 1] for argv in planned["commands"]]
    assert verbs == ["apply", "create", "wait", "exec", "delete"]
    policy, pod = planned["manifests"]
    for manifest in (policy, pod):
        kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
    assert restricted_violations(pod) == []
    assert "the-program" not in out  # it goes on stdin


def test_dry_run_text_is_a_script_that_feeds_each_manifest_on_stdin(run_cli: RunCli, no_processes: None) -> None:
    status, out, _ = run_cli("--backend", "kubernetes", "run", "--dry-run", "--net", "host", "--cmd", "echo hi")
    lines = out.splitlines()
    start = lines.index("kubectl --namespace=default create -f - -o name <<'ISOL8'")
    end = lines.index("ISOL8", start)
    assert status == 0 and json.loads("\n".join(lines[start + 1 : end]))["kind"] == "Pod"
    assert shlex.split(lines[end + 1])[2:4] == ["wait", "--for=condition=Ready"]
    assert "apply" not in out  # a host network has no policy


# ---- a session's record, in its Pod's annotations ------------------------------------------------

FREE = R.Record("7", None, 1000, '{"installed": []}')
HELD = FREE._replace(turn=("abc", 2000))


@pytest.mark.parametrize(
    ("verb", "args", "record", "now", "decision"),
    [
        ("claim", ["abc", "600"], FREE, 1500, R.Decision({R.TURN: "abc 2100"}, output='{"installed": []}')),
        ("claim", ["xyz", "600"], HELD, 1500, R.Decision({}, failure=(R.BUSY, "session busy"))),
        ("claim", ["abc", "600"], HELD, 1500, R.Decision({R.TURN: "abc 2100"}, output='{"installed": []}')),
        ("claim", ["xyz", "600"], HELD, 2001, R.Decision({R.TURN: "xyz 2601"}, output='{"installed": []}')),
        ("save", ["abc"], HELD, 1500, R.Decision({R.STATE: "new"})),
        ("save", ["xyz"], HELD, 1500, R.Decision({}, failure=(R.LOST, "turn lost"))),
        ("release", ["abc", "1"], HELD, 1500, R.Decision({R.USED: "1500", R.TURN: None}, sweep=True)),
        ("release", ["abc", "0"], HELD, 1500, R.Decision({R.USED: "1500", R.TURN: None})),
        ("release", ["abc", "1"], FREE, 1500, R.Decision({}, failure=(R.LOST, "turn lost"))),
        ("status", [], HELD, 1500, R.Decision({}, output='1 1000 1500\n{"installed": []}')),
        ("expire", ["300"], HELD, 1500, R.Decision({}, output="busy")),
        ("expire", ["300"], FREE, 1500, R.Decision({R.TURN: "expire-7 1560"}, output="expired")),
        ("expire", ["900"], FREE, 1500, R.Decision({}, output="fresh")),
        ("expire", ["900"], HELD._replace(used=2400), 2500, R.Decision({R.TURN: None}, output="fresh")),  # stale
        ("expire", ["900"], FREE._replace(used=None), 1500, R.Decision({R.USED: "1500"}, output="fresh")),
    ],
)
def test_the_session_verbs_on_the_record(
    verb: str, args: list[str], record: R.Record, now: int, decision: R.Decision
) -> None:
    assert R.decide(verb, args, "new", record, now) == decision


def test_the_record_is_read_from_annotations_and_patched_only_as_it_was_read() -> None:
    pod = {"metadata": {"resourceVersion": "42", "annotations": {R.TURN: "abc 2000", R.USED: "900", R.STATE: "{}"}}}
    record = R.read(pod)
    assert record == R.Record("42", ("abc", 2000), 900, "{}")
    assert R.read({"metadata": {"annotations": {R.TURN: "garbage"}}}).turn is None
    assert R.patch(record, {R.TURN: None}) == {"metadata": {"resourceVersion": "42", "annotations": {R.TURN: None}}}


def test_a_changed_pod_is_read_and_decided_again(fp: Any) -> None:
    backend = KubeBackend(SETTINGS)

    def pod(version: str, turn: str | None) -> str:
        notes = {R.TURN: turn} if turn else {}
        return json.dumps({"metadata": {"name": "isol8-1", "resourceVersion": version, "annotations": notes}})

    fp.register(K.get_pod_argv(SETTINGS, "isol8-1"), stdout=pod("1", None))
    conflict = 'Error from server (Conflict): Operation cannot be fulfilled on pods "isol8-1"\n'
    fp.register(K.patch_argv(SETTINGS, "isol8-1"), returncode=1, stderr=conflict)
    fp.register(K.get_pod_argv(SETTINGS, "isol8-1"), stdout=pod("2", "other 9999999999"))  # another replica won
    with pytest.raises(EngineError) as caught:
        backend.session_control("isol8-1", "claim", ["mine", "600"])
    assert (caught.value.returncode, caught.value.message) == (R.BUSY, "session busy")


def test_base_images_are_named_in_the_registry_the_nodes_pull_from() -> None:
    backend = KubeBackend(KubeSettings(images="registry.example.com/team"))
    assert backend.local_image("isol8:python") == "registry.example.com/team/isol8:python"  # setup --push's name
    assert backend.local_image("registry.example.com/other/img:1") == "registry.example.com/other/img:1"
    assert KubeBackend(SETTINGS).local_image("isol8:python") == "isol8:python"


def test_setup_push_needs_a_registry(run_cli: RunCli, no_processes: None) -> None:
    status, _, err = run_cli("setup", "--push")
    assert status == 2 and "setup --push needs the config's registry.repository" in err
