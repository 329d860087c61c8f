"""The Pod and NetworkPolicy of a sandbox on Kubernetes, as data: pure functions, pinned exactly by
tests/unit/test_kube_manifest.py and checked against the Kubernetes schemas there.

A sandbox Pod is the engines' sandbox in Kubernetes' terms: the restricted Pod Security Standard
(non-root uid/gid 1100, read-only root, no privilege escalation, every capability dropped, a
seccomp profile), no service account token, no service links, no host namespaces, limits equal
to requests, /sandbox, /tmp and /dev/shm as memory-backed emptyDirs of the policy's sizes, the
run's deadline as activeDeadlineSeconds and restartPolicy Never. Its one container waits (PID 1
reaps orphans and outlives the sandbox user's `kill -KILL -1`); the program comes later, through
`kubectl exec -i` with the engines' wrapper and payload on stdin, never in the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from isol8 import labels as L
from isol8.core.egress import PROXY_PORT
from isol8.core.sandbox import SANDBOX_DIR, SANDBOX_GID, SANDBOX_UID, SandboxPolicy
from isol8.records import NamedTuple

CONTAINER = "sandbox"
NETWORK_LABEL = "org.isol8.network"  # what a NetworkPolicy selects a Pod's network by
# the namespace's standing NetworkPolicies, one per network that denies: no egress, no ingress for
# `none`, and for `filtered` too, where a run's own policy adds the way to its proxy (policies add
# up: losing that one leaves its sandbox with nothing, never with the Pod network)
DENY_ALL = "isol8-network-{network}"
EPHEMERAL_STORAGE = 64 * 1024 * 1024  # the container's own logs: its root is read-only, its folders memory
# bash waits for any child, so PID 1 reaps the orphans executions leave; as uid 1100 it is the
# namespace's init, which the sandbox user's own `kill -KILL -1` spares
WAITER = "while :; do sleep 86400 & wait $!; done"
# a filtered run's egress (backends/kubernetes/egress.py): its proxy Pod's container, and the relay
# beside the sandbox in its own Pod; both run as the isol8:proxy image's user (Debian's `proxy`)
PROXY_CONTAINER = "proxy"
RELAY_CONTAINER = "egress"
PROXY_UID = 13
PROXY_RESOURCES = {"memory": "256Mi", "cpu": "1", "ephemeral-storage": "64Mi"}
RELAY_RESOURCES = {"memory": "64Mi", "cpu": "500m", "ephemeral-storage": "16Mi"}

# a label value: at most 63 characters, alphanumerics with - _ . inside (the API's own rule);
# keys are isol8's own and all valid names; other values (JSON, host/pid) go to annotations
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")


class KubeSettings(NamedTuple):
    """The config's `backend` for kind kubernetes: where and how sandbox Pods run."""

    namespace: str = "default"
    context: str | None = None
    runtime_class: str | None = None  # gVisor, Kata...: as the cluster names its RuntimeClass
    image_pull_secrets: tuple[str, ...] = ()
    # isol8's stricter profile where the cluster's nodes have it installed (the path under the
    # kubelet's seccomp folder); else RuntimeDefault, the container runtime's default profile
    seccomp_localhost: str | None = None
    images: str | None = None  # the registry's repository the base images are in (registry.repository)


def kube_settings(values: Mapping[str, Any]) -> KubeSettings:
    """KubeSettings from the config's `backend` keys (context, namespace, runtimeClassName,
    imagePullSecrets, seccompLocalhost) and `registry` (registry.repository: the base images);
    unset ones keep their defaults."""
    return KubeSettings(
        namespace=str(values.get("namespace") or "default"),
        context=values.get("context") or None,
        runtime_class=values.get("runtimeClassName") or None,
        image_pull_secrets=tuple(values.get("imagePullSecrets") or ()),
        seccomp_localhost=values.get("seccompLocalhost") or None,
        images=values.get("registry") or None,
    )


def split_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations): a value Kubernetes cannot hold as a label is an annotation."""
    kept: dict[str, str] = {}
    annotated: dict[str, str] = {}
    for key, value in labels.items():
        (kept if _LABEL_VALUE.fullmatch(value) else annotated)[key] = value
    return kept, annotated


def quantity_cpu(cpus: float) -> str:
    return f"{round(cpus * 1000)}m"


def pod_manifest(
    name: str,
    image: str,
    policy: SandboxPolicy,
    labels: Mapping[str, str],
    settings: KubeSettings,
    *,
    deadline_s: int | None,
    relay: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Pod of one sandbox. policy.network is its NETWORK_LABEL: `none` is denied everything
    by network_policy_manifest (for a CNI that enforces NetworkPolicy), `host` has no policy,
    `filtered` is denied everything too but what its egress_policies allow, its relay
    (relay_container) beside it.
    deadline_s None: a standby Pod (a warm pool's, a session's), which its server removes."""
    if (policy.network == "filtered") != (relay is not None):
        raise ValueError("a filtered sandbox Pod, and it alone, has the relay to its egress proxy")
    if deadline_s is not None and deadline_s < 1:
        raise ValueError("a Pod's deadline is at least one second")
    labels_and_annotations = {**labels, NETWORK_LABEL: policy.network}
    resources = {
        "memory": str(policy.memory),
        "cpu": quantity_cpu(policy.cpus),
        "ephemeral-storage": str(EPHEMERAL_STORAGE),
    }
    seccomp: dict[str, str] = (
        {"type": "Localhost", "localhostProfile": settings.seccomp_localhost}
        if settings.seccomp_localhost
        else {"type": "RuntimeDefault"}
    )
    spec: dict[str, Any] = {
        **_alone(deadline_s),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SANDBOX_UID,
            "runAsGroup": SANDBOX_GID,
            "fsGroup": SANDBOX_GID,
            "seccompProfile": seccomp,
            # no ICMP sockets for any group (containerd's and CRI-O's default opens them to all):
            # how a CNI's policies treat ICMP varies, a socket that is never made does not
            "sysctls": [{"name": "net.ipv4.ping_group_range", "value": "1 0"}],
        },
        "containers": [_container(image, resources, seccomp), *([dict(relay)] if relay else [])],
        "volumes": [
            {"name": "sandbox", "emptyDir": {"medium": "Memory", "sizeLimit": str(policy.sandbox_size)}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": str(policy.tmp_size)}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": str(policy.shm_size)}},
        ],
    }
    if settings.runtime_class:
        spec["runtimeClassName"] = settings.runtime_class
    return _pod(name, labels_and_annotations, settings, spec)


def _pod(name: str, labels: Mapping[str, str], settings: KubeSettings, spec: dict[str, Any]) -> dict[str, Any]:
    """A Pod of spec in the settings' namespace, pulled with its secrets: labels too long for labels are annotations."""
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in settings.image_pull_secrets]
    kept, annotations = split_labels(labels)
    metadata: dict[str, Any] = {"name": name, "namespace": settings.namespace, "labels": kept}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _alone(deadline_s: int | None) -> dict[str, Any]:
    """What every Pod of isol8's is: run once, no grace, no token, no service links, no host namespace."""
    return {
        "restartPolicy": "Never",
        **({} if deadline_s is None else {"activeDeadlineSeconds": deadline_s}),
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
    }


def _container(image: str, resources: Mapping[str, str], seccomp: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", WAITER],
        "workingDir": SANDBOX_DIR,
        "securityContext": _locked_down(SANDBOX_UID, SANDBOX_GID, seccomp),
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "volumeMounts": [
            {"name": "sandbox", "mountPath": SANDBOX_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }


def network_policy_manifest(settings: KubeSettings, network: str = "none") -> dict[str, Any]:
    """The Pods of that network (`none`, `filtered`) reach nothing and nothing reaches them, but
    what other policies allow (given a CNI that enforces NetworkPolicy: without one, this is only
    a record of intent)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": DENY_ALL.format(network=network),
            "namespace": settings.namespace,
            "labels": {"org.isol8.managed": "true"},
        },
        "spec": {
            "podSelector": {"matchLabels": {NETWORK_LABEL: network}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def _locked_down(uid: int, gid: int, seccomp: Mapping[str, str]) -> dict[str, Any]:
    """A container's part of the restricted Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": dict(seccomp),
    }


_RUNTIME_DEFAULT = {"type": "RuntimeDefault"}  # the proxy's and the relay's, as on the engines


def relay_container(image: str, proxy_ip: str) -> dict[str, Any]:
    """The filtered sandbox Pod's second container: 127.0.0.1:PROXY_PORT, where the program's proxy
    settings lead as on the engines, relayed to its proxy Pod at proxy_ip (the API server's
    podIP), the one peer the sandbox's NetworkPolicy lets it reach."""
    import ipaddress  # a filtered run's alone

    address = ipaddress.ip_address(proxy_ip)
    target = f"TCP6:[{address}]:{PROXY_PORT}" if address.version == 6 else f"TCP4:{address}:{PROXY_PORT}"
    listen = f"TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,fork,max-children=128,reuseaddr"
    return {
        "name": RELAY_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["socat", listen, target],
        "securityContext": _locked_down(PROXY_UID, PROXY_UID, _RUNTIME_DEFAULT),
        "resources": {"requests": dict(RELAY_RESOURCES), "limits": dict(RELAY_RESOURCES)},
    }


def proxy_pod_manifest(
    name: str,
    image: str,
    labels: Mapping[str, str],
    hosts: Sequence[tuple[str, str]],
    settings: KubeSettings,
    *,
    deadline_s: int,
) -> dict[str, Any]:
    """A filtered run's egress proxy: squid (isol8:proxy), exec'd with its config on stdin once the
    Pod is Ready; on the Pod network, whose policy lets only its sandbox in (egress_policies), and
    whose hosts file has network.hosts (hostAliases)."""
    labels_and_annotations = {**labels, NETWORK_LABEL: "proxy"}
    by_address: dict[str, list[str]] = {}
    for host, address in hosts:
        by_address.setdefault(address, []).append(host)
    spec: dict[str, Any] = {
        **_alone(deadline_s),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "seccompProfile": dict(_RUNTIME_DEFAULT),
        },
        "containers": [
            {
                "name": PROXY_CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "securityContext": _locked_down(PROXY_UID, PROXY_UID, _RUNTIME_DEFAULT),
                "resources": {"requests": dict(PROXY_RESOURCES), "limits": dict(PROXY_RESOURCES)},
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
    }
    if by_address:
        spec["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in by_address.items()]
    return _pod(name, labels_and_annotations, settings, spec)


def egress_policies(
    sandbox: str, labels: Mapping[str, str], settings: KubeSettings, *, owner: tuple[str, str]
) -> list[dict[str, Any]]:
    """A filtered sandbox's two NetworkPolicies: the sandbox Pod reaches its proxy Pod's
    PROXY_PORT (beside the standing deny-all of `filtered`, that alone: no DNS, the proxy
    resolves), and nothing but the sandbox reaches the proxy. Both are labelled EGRESS_OF the
    sandbox, and owned by the proxy Pod (owner: its name and uid), which the garbage collector
    deletes them with: whatever deletes the proxy, its sandbox is left with no way out at all."""
    kept, _ = split_labels({**labels, L.EGRESS_OF: sandbox})
    owned_by = {"apiVersion": "v1", "kind": "Pod", "name": owner[0], "uid": owner[1]}
    port = [{"protocol": "TCP", "port": PROXY_PORT}]
    sandbox_pod = {"podSelector": {"matchLabels": {L.RUN_ID: sandbox}}}
    proxy_pod = {"podSelector": {"matchLabels": {L.EGRESS_OF: sandbox, NETWORK_LABEL: "proxy"}}}

    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        metadata = {"name": name, "namespace": settings.namespace, "labels": kept, "ownerReferences": [owned_by]}
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata, "spec": spec}

    return [
        policy(
            f"{sandbox}-egress",
            {
                **sandbox_pod,
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],
                "egress": [{"to": [proxy_pod], "ports": port}],
            },
        ),
        policy(
            f"{sandbox}-proxy",
            {**proxy_pod, "policyTypes": ["Ingress"], "ingress": [{"from": [sandbox_pod], "ports": port}]},
        ),
    ]
