"""A Kubernetes cluster for the tests: the simulated node (tests/kubesim/kubectl, a node made of
podman) or the live cluster that ISOL8_TEST_KUBECONFIG names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from isol8 import labels as L
from isol8.core.sandbox import default_seccomp_profile
from tests.integration.conftest import ISOL8, Result, _answers

SIMULATOR = Path(__file__).resolve().parents[1] / "kubesim"
NAMESPACE = "isol8-test"


class Cluster:
    def __init__(self, kind: str, env: dict[str, str], config: Path) -> None:
        self.kind, self.env, self.config = kind, env, config

    @property
    def options(self) -> list[str]:
        """isol8's global options that choose this cluster."""
        return ["--backend", "kubernetes", "--config", str(self.config), "--no-user-config"]

    def isol8(self, *args: str, timeout: float = 180, stdin: str | None = None) -> Result:
        started = time.monotonic()
        done = subprocess.run(
            [ISOL8, *self.options, *args], capture_output=True, text=True, env=self.env, timeout=timeout, input=stdin
        )
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def start(self, *args: str) -> subprocess.Popen[str]:
        argv = [ISOL8, *self.options, "run", *args]
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def pods(self, label: str = "org.isol8.managed=true") -> list[str]:
        argv = ["kubectl", "--namespace", NAMESPACE, "get", "pods", "-l", label, "-o", "json"]
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        assert done.returncode == 0, done.stderr
        return [item["metadata"]["name"] for item in json.loads(done.stdout)["items"]]

    def policies(self) -> list[str]:
        """The NetworkPolicies of filtered runs (`none`'s one stays: it is the namespace's)."""
        argv = ["kubectl", "--namespace", NAMESPACE, "get", "networkpolicies", "-l", L.EGRESS_OF, "-o", "json"]
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        assert done.returncode == 0, done.stderr
        return [item["metadata"]["name"] for item in json.loads(done.stdout)["items"]]

    def containers(self) -> list[str]:
        """The simulated node's containers of isol8's Pods (a deleted Pod must leave none running)."""
        if self.kind != "simulated":
            return []
        argv = ["podman", "ps", "-a", "-q", "--filter", "label=org.isol8.managed=true"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.split()

    def assert_empty(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while (self.pods() or self.containers() or self.policies()) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert (self.pods(), self.containers(), self.policies()) == ([], [], [])


def open_cluster(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """The cluster of `kind` ("simulated" or "live"): the live one is skipped, visibly, without
    ISOL8_TEST_KUBECONFIG; the simulated one fails, never skips, without podman."""
    env = dict(os.environ)
    env.pop("ISOL8_ENGINE", None)
    if kind == "live":
        kubeconfig = os.environ.get("ISOL8_TEST_KUBECONFIG")
        if not kubeconfig:
            pytest.skip("no live cluster: set ISOL8_TEST_KUBECONFIG to a kubeconfig to run these tests on one")
        env["KUBECONFIG"] = kubeconfig
        # isol8's profile as the nodes have it installed (docs/kubernetes.md), else RuntimeDefault
        seccomp = os.environ.get("ISOL8_TEST_KUBE_SECCOMP")
    else:
        problem = _answers("podman")
        if problem is not None:
            pytest.fail(f"the simulated node needs podman, which is not usable: {problem} (run scripts/ensure-engines)")
        env["PATH"] = f"{SIMULATOR}{os.pathsep}{env['PATH']}"
        state = tmp_path_factory.mktemp("kubesim")
        env["ISOL8_KUBESIM_STATE"] = str(state)
        # installed on the node as docs/kubernetes.md says: in the kubelet's seccomp folder
        (state / "seccomp").mkdir()
        shutil.copy(default_seccomp_profile(), state / "seccomp" / "isol8.json")
        seccomp = "isol8.json"
    config = tmp_path_factory.mktemp("kubeconfig") / "isol8.json"
    backend = {"kind": "kubernetes", "namespace": NAMESPACE, "seccompLocalhost": seccomp}
    config.write_text(json.dumps({"backend": backend}))
    return Cluster(kind, env, config)


KUBE_NETWORK = "podman-default-kube-network"  # where `podman kube play` puts Pods


def node_gateway() -> str:
    """This machine's address on the simulated node's Pod network (made now if no Pod has made it yet)."""
    if subprocess.run(["podman", "network", "exists", KUBE_NETWORK]).returncode != 0:
        subprocess.run(["podman", "network", "create", KUBE_NETWORK], capture_output=True, check=True)
    done = subprocess.run(
        ["podman", "network", "inspect", KUBE_NETWORK, "--format", "{{json .Subnets}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(done.stdout)[0]["gateway"])
