"""The Kubernetes sandbox's manifests and kubectl argv: exact, valid against the Kubernetes 1.37
schemas (kubernetes-validate, strict: no field the API does not know), and within every rule of
the restricted Pod Security Standard, each rule written out below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from isol8.backends.kubernetes import argv as K
from isol8.backends.kubernetes.manifest import (
    KubeSettings,
    egress_policies,
    network_policy_manifest,
    pod_manifest,
    proxy_pod_manifest,
    relay_container,
    split_labels,
)
from isol8.config import load_config
from isol8.core.sandbox import SandboxPolicy
from isol8.frontends.cli.parser import build_parser

SCHEMA_VERSION = "1.37.0"
LABELS = {"org.isol8.managed": "true", "org.isol8.run.id": "isol8-0123abcd", "org.isol8.run.host": "vm/f5-4026"}
DEFAULT = KubeSettings(namespace="sandboxes")
EVERYTHING = KubeSettings(
    namespace="sandboxes",
    context="prod",
    runtime_class="gvisor",
    image_pull_secrets=("registry-a", "registry-b"),
    seccomp_localhost="isol8/seccomp.json",
)


def _pod(settings: KubeSettings = DEFAULT, **policy: Any) -> dict[str, Any]:
    return pod_manifest(
        "isol8-0123abcd", "reg.example:5000/isol8/python:1", SandboxPolicy(**policy), LABELS, settings, deadline_s=40
    )


def test_the_pod_of_a_default_sandbox_exactly() -> None:
    limits = {"memory": "536870912", "cpu": "1000m", "ephemeral-storage": "67108864"}
    locked = {"type": "RuntimeDefault"}
    assert _pod() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "isol8-0123abcd",
            "namespace": "sandboxes",
            "labels": {"org.isol8.managed": "true", "org.isol8.run.id": "isol8-0123abcd", "org.isol8.network": "none"},
            "annotations": {"org.isol8.run.host": "vm/f5-4026"},  # a `/` no label value may have
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 40,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1100,
                "runAsGroup": 1100,
                "fsGroup": 1100,
                "seccompProfile": locked,
                "sysctls": [{"name": "net.ipv4.ping_group_range", "value": "1 0"}],
            },
            "containers": [
                {
                    "name": "sandbox",
                    "image": "reg.example:5000/isol8/python:1",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/bash", "-c", "while :; do sleep 86400 & wait $!; done"],
                    "workingDir": "/sandbox",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1100,
                        "runAsGroup": 1100,
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": locked,
                    },
                    "resources": {"requests": limits, "limits": limits},
                    "volumeMounts": [
                        {"name": "sandbox", "mountPath": "/sandbox"},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "shm", "mountPath": "/dev/shm"},
                    ],
                }
            ],
            "volumes": [
                {"name": "sandbox", "emptyDir": {"medium": "Memory", "sizeLimit": "536870912"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "268435456"}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "67108864"}},
            ],
        },
    }


def test_the_policy_and_the_settings_reach_the_pod() -> None:
    pod = _pod(EVERYTHING, memory="64m", cpus="0.25", sandbox_size="8m", tmp_size="4m", shm_size="1m", network="host")
    spec, (container,) = pod["spec"], pod["spec"]["containers"]
    assert container["resources"]["limits"] == {"memory": "67108864", "cpu": "250m", "ephemeral-storage": "67108864"}
    assert [v["emptyDir"]["sizeLimit"] for v in spec["volumes"]] == ["8388608", "4194304", "1048576"]
    assert pod["metadata"]["labels"]["org.isol8.network"] == "host"
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    localhost = {"type": "Localhost", "localhostProfile": "isol8/seccomp.json"}
    assert spec["securityContext"]["seccompProfile"] == container["securityContext"]["seccompProfile"] == localhost


@pytest.mark.parametrize("settings", [DEFAULT, EVERYTHING], ids=["default", "every-setting"])
def test_the_manifests_are_valid_kubernetes_objects(settings: KubeSettings) -> None:
    for manifest in (_pod(settings), _pod(settings, network="host"), network_policy_manifest(settings)):
        kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)


def test_the_schema_check_can_fail() -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True  # a typo the API would drop
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, SCHEMA_VERSION, strict=True)


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every rule of the Pod Security Standards' restricted profile (baseline's included) that
    the Pod breaks: https://kubernetes.io/docs/concepts/security/pod-security-standards/"""
    spec, broken = pod["spec"], []
    containers = [*spec.get("initContainers", []), *spec["containers"], *spec.get("ephemeralContainers", [])]
    pod_context = spec.get("securityContext", {})

    def each(field: str) -> list[Any]:  # a container's setting, else the pod's
        return [c.get("securityContext", {}).get(field, pod_context.get(field)) for c in containers]

    if any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")):
        broken.append("host namespaces")
    if any(c.get("securityContext", {}).get("privileged") for c in containers):
        broken.append("privileged containers")
    for c in containers:
        added = c.get("securityContext", {}).get("capabilities", {}).get("add", [])
        if set(added) - {"NET_BIND_SERVICE"}:
            broken.append("capabilities added beyond NET_BIND_SERVICE")
        if "ALL" not in c.get("securityContext", {}).get("capabilities", {}).get("drop", []):
            broken.append("capabilities not dropped (ALL)")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            broken.append("host ports")
        if c.get("securityContext", {}).get("procMount", "Default") != "Default":
            broken.append("/proc mount type")
        if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
            broken.append("privilege escalation allowed")
    if any(c.get("securityContext", {}).get("windowsOptions", {}).get("hostProcess") for c in containers):
        broken.append("HostProcess")
    allowed = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in spec.get("volumes", []):
        if set(volume) - {"name"} - allowed:
            broken.append(f"volume type of {volume['name']}")
    if any(p.get("type") not in ("RuntimeDefault", "Localhost") for p in each("seccompProfile") if p) or not all(
        each("seccompProfile")
    ):
        broken.append("seccomp profile not RuntimeDefault or Localhost")
    if any(p and p.get("type") == "Unconfined" for p in each("appArmorProfile")):
        broken.append("AppArmor unconfined")
    selinux = [o for o in each("seLinuxOptions") if o]
    if any(o.get("type", "container_t") not in ("container_t", "container_init_t", "container_kvm_t") for o in selinux):
        broken.append("SELinux type")
    if any(o.get("user") or o.get("role") for o in selinux):
        broken.append("SELinux user or role")
    if not all(v is True for v in each("runAsNonRoot")):
        broken.append("runAsNonRoot not true")
    if any(v == 0 for v in each("runAsUser")):
        broken.append("runAsUser 0")
    safe = {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
    }
    if any(s["name"] not in safe for s in pod_context.get("sysctls", [])):
        broken.append("unsafe sysctls")
    return broken


def test_the_pod_satisfies_every_rule_of_the_restricted_pod_security_standard() -> None:
    assert restricted_violations(_pod()) == []
    assert restricted_violations(_pod(EVERYTHING)) == []


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda p: p["spec"].update(hostPID=True), "host namespaces"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True), "privilege"),
        (lambda p: p["spec"]["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "added"),
        (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volume type of h"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser 0"),
        (
            lambda p: p["spec"]["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            "seccomp",
        ),
    ],
)
def test_the_rules_catch_what_they_forbid(change: Any, rule: str) -> None:
    pod = _pod()
    change(pod)
    assert any(rule in broken for broken in restricted_violations(pod))


def test_the_standing_policy_of_filtered_denies_everything_to_the_pods_of_filtered() -> None:
    policy = network_policy_manifest(DEFAULT, "filtered")
    assert policy["metadata"]["name"] == "isol8-network-filtered"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"org.isol8.network": "filtered"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    kubernetes_validate.validate(policy, SCHEMA_VERSION, strict=True)


def test_the_network_policy_of_none_denies_everything_to_the_pods_of_none() -> None:
    assert network_policy_manifest(DEFAULT) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "isol8-network-none", "namespace": "sandboxes", "labels": {"org.isol8.managed": "true"}},
        "spec": {
            "podSelector": {"matchLabels": {"org.isol8.network": "none"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def test_what_no_pod_can_be_is_refused() -> None:
    with pytest.raises(ValueError, match="has the relay to its egress proxy"):
        _pod(network="filtered", egress=object())  # a filtered Pod without its relay
    with pytest.raises(ValueError, match="has the relay to its egress proxy"):
        pod_manifest(
            "isol8-1", "img", SandboxPolicy(), {}, DEFAULT, deadline_s=9, relay=relay_container("p", "10.0.0.9")
        )
    with pytest.raises(ValueError, match="deadline"):
        pod_manifest("isol8-1", "img", SandboxPolicy(), {}, DEFAULT, deadline_s=0)


# ---- a filtered run's: the relay beside the sandbox, the proxy Pod, their NetworkPolicies ---------

PROXY_LABELS = {
    "org.isol8.managed": "true",
    "org.isol8.run.id": "isol8-0123abcd-proxy",
    "org.isol8.egress.of": "isol8-0123abcd",
}
LOCKED_13 = {
    "runAsNonRoot": True,
    "runAsUser": 13,
    "runAsGroup": 13,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _filtered_pod(settings: KubeSettings = DEFAULT) -> dict[str, Any]:
    policy = SandboxPolicy(network="filtered", egress=object())  # type: ignore[arg-type]
    relay = relay_container("reg.example:5000/isol8/isol8:proxy", "10.1.2.3")
    return pod_manifest("isol8-0123abcd", "img", policy, LABELS, settings, deadline_s=40, relay=relay)


def _proxy_pod(settings: KubeSettings = DEFAULT) -> dict[str, Any]:
    hosts = (("allowed.test", "10.0.0.1"), ("other.test", "10.0.0.1"), ("v6.test", "fd00::1"))
    return proxy_pod_manifest(
        "isol8-0123abcd-proxy", "reg.example:5000/isol8/isol8:proxy", PROXY_LABELS, hosts, settings, deadline_s=40
    )


def test_the_relay_beside_a_filtered_sandbox_leads_to_its_proxy_pod_alone_exactly() -> None:
    limits = {"memory": "64Mi", "cpu": "500m", "ephemeral-storage": "16Mi"}
    listen = "TCP-LISTEN:3128,bind=127.0.0.1,fork,max-children=128,reuseaddr"
    assert relay_container("proxy-image", "10.1.2.3") == {
        "name": "egress",
        "image": "proxy-image",
        "imagePullPolicy": "IfNotPresent",
        "command": ["socat", listen, "TCP4:10.1.2.3:3128"],
        "securityContext": LOCKED_13,
        "resources": {"requests": limits, "limits": limits},
    }
    assert relay_container("p", "fd00::7")["command"][2] == "TCP6:[fd00::7]:3128"
    with pytest.raises(ValueError):  # the API server's podIP, and nothing else, ever reaches socat's argv
        relay_container("p", "10.1.2.3,fork EXEC:sh")
    pod = _filtered_pod()
    assert [c["name"] for c in pod["spec"]["containers"]] == ["sandbox", "egress"]
    assert pod["metadata"]["labels"]["org.isol8.network"] == "filtered"


def test_the_proxy_pod_exactly() -> None:
    limits = {"memory": "256Mi", "cpu": "1", "ephemeral-storage": "64Mi"}
    assert _proxy_pod() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "isol8-0123abcd-proxy",
            "namespace": "sandboxes",
            "labels": {**PROXY_LABELS, "org.isol8.network": "proxy"},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 40,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 13,
                "runAsGroup": 13,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "proxy",
                    "image": "reg.example:5000/isol8/isol8:proxy",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "securityContext": LOCKED_13,
                    "resources": {"requests": limits, "limits": limits},
                    "volumeMounts": [
                        {"name": "spool", "mountPath": "/var/spool/squid"},
                        {"name": "run", "mountPath": "/run/squid"},
                    ],
                }
            ],
            "volumes": [
                {"name": "spool", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            ],
            "hostAliases": [
                {"ip": "10.0.0.1", "hostnames": ["allowed.test", "other.test"]},
                {"ip": "fd00::1", "hostnames": ["v6.test"]},
            ],
        },
    }
    assert _proxy_pod(EVERYTHING)["spec"]["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]


def test_the_policies_of_a_filtered_run_let_the_sandbox_reach_its_proxy_alone_exactly() -> None:
    sandbox, proxy = egress_policies("isol8-0123abcd", PROXY_LABELS, DEFAULT, owner=("isol8-0123abcd-proxy", "u-1"))
    metadata = {
        "namespace": "sandboxes",
        "labels": PROXY_LABELS,
        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "isol8-0123abcd-proxy", "uid": "u-1"}],
    }
    port = [{"protocol": "TCP", "port": 3128}]
    to_proxy = {"podSelector": {"matchLabels": {"org.isol8.egress.of": "isol8-0123abcd", "org.isol8.network": "proxy"}}}
    from_sandbox = {"podSelector": {"matchLabels": {"org.isol8.run.id": "isol8-0123abcd"}}}
    assert sandbox == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "isol8-0123abcd-egress", **metadata},
        "spec": {
            **from_sandbox,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [{"to": [to_proxy], "ports": port}],
        },
    }
    assert proxy == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "isol8-0123abcd-proxy", **metadata},
        "spec": {**to_proxy, "policyTypes": ["Ingress"], "ingress": [{"from": [from_sandbox], "ports": port}]},
    }
    # the proxy Pod is no sandbox: the sandbox's policy, and `none`'s, never select it
    assert not set(from_sandbox["podSelector"]["matchLabels"].items()) <= set(
        _proxy_pod()["metadata"]["labels"].items()
    )
    assert _proxy_pod()["metadata"]["labels"]["org.isol8.network"] != "none"


@pytest.mark.parametrize("settings", [DEFAULT, EVERYTHING], ids=["default", "every-setting"])
def test_a_filtered_runs_manifests_are_valid_and_restricted(settings: KubeSettings) -> None:
    owner = ("isol8-0123abcd-proxy", "u-1")
    for manifest in (
        _filtered_pod(settings),
        _proxy_pod(settings),
        *egress_policies("isol8-0123abcd", PROXY_LABELS, settings, owner=owner),
    ):
        kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
    assert restricted_violations(_filtered_pod(settings)) == []
    assert restricted_violations(_proxy_pod(settings)) == []


def test_a_value_no_label_can_hold_is_an_annotation() -> None:
    kept, annotated = split_labels({"a": "x" * 63, "b": "x" * 64, "c": '{"json": 1}', "d": "", "e": "-x"})
    assert kept == {"a": "x" * 63, "d": ""}
    assert annotated == {"b": "x" * 64, "c": '{"json": 1}', "e": "-x"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (K.create_argv(DEFAULT), ["kubectl", "--namespace=sandboxes", "create", "-f", "-", "-o", "name"]),
        (
            K.apply_argv(EVERYTHING),
            ["kubectl", "--context=prod", "--namespace=sandboxes", "apply", "-f", "-", "-o", "name"],
        ),
        (
            K.wait_ready_argv(DEFAULT, "isol8-1", 60),
            ["kubectl", "--namespace=sandboxes", "wait", "--for=condition=Ready", "pod/isol8-1", "--timeout=60s"],
        ),
        (
            K.exec_argv(DEFAULT, "isol8-1", ["/bin/bash", "-c", "WRAPPER", "isol8"]),
            ["kubectl", "--namespace=sandboxes", "exec", "-i", "pod/isol8-1", "-c", "sandbox", "--",
             "/bin/bash", "-c", "WRAPPER", "isol8"],
        ),
        (
            K.delete_argv(DEFAULT, ["isol8-1", "isol8-2"]),
            ["kubectl", "--namespace=sandboxes", "delete", "pod", "isol8-1", "isol8-2",
             "--grace-period=0", "--force", "--wait=false", "--ignore-not-found"],
        ),
        (
            K.delete_labelled_argv(DEFAULT, {"org.isol8.run.owner": "ab12", "org.isol8.managed": "true"}),
            ["kubectl", "--namespace=sandboxes", "delete", "pod", "-l",
             "org.isol8.managed=true,org.isol8.run.owner=ab12", "--grace-period=0", "--force", "--wait=false"],
        ),
        (K.version_argv(DEFAULT), ["kubectl", "--namespace=sandboxes", "version", "-o", "json"]),
        (
            K.get_pod_argv(DEFAULT, "isol8-1"),
            ["kubectl", "--namespace=sandboxes", "get", "pod/isol8-1", "-o", "json"],
        ),
        (
            K.get_argv(DEFAULT, {"org.isol8.run.owner": None, "org.isol8.managed": "true"}),
            ["kubectl", "--namespace=sandboxes", "get", "pods", "-l",
             "org.isol8.managed=true,org.isol8.run.owner", "-o", "json"],
        ),
        (
            K.get_argv(DEFAULT, {"org.isol8.run.id": "isol8-1"}),
            ["kubectl", "--namespace=sandboxes", "get", "pods", "-l", "org.isol8.run.id=isol8-1", "-o", "json"],
        ),
    ],
)  # fmt: skip
def test_kubectl_argv_exactly(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


SERVER_MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "isol8-server.yaml"


def test_the_servers_own_manifest_is_valid_and_its_role_reaches_only_sandboxes(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all(SERVER_MANIFEST.read_text()))
    assert [d["kind"] for d in documents] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    ]
    for document in documents:
        kubernetes_validate.validate(document, SCHEMA_VERSION, strict=True)
        assert document["metadata"]["namespace"] == "isol8"  # a Role, never a ClusterRole
    (role,) = (d for d in documents if d["kind"] == "Role")
    reached = {
        (group, resource) for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
    }
    assert reached == {("", "pods"), ("", "pods/exec"), ("networking.k8s.io", "networkpolicies")}
    (deployment,) = (d for d in documents if d["kind"] == "Deployment")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(server["args"][1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 3000)
    (tmp_path / "isol8.config.json").write_text(documents[3]["data"]["isol8.config.json"])
    config = load_config(str(tmp_path / "isol8.config.json"), user=False)  # isol8's own check of it
    assert (config.backend.kind, config.backend.kube["namespace"], config.server.fleet) == (
        "kubernetes",
        "isol8",
        "isol8",
    )
