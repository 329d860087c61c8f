"""A filtered run's way out on Kubernetes: a proxy Pod, and NetworkPolicies that make it the only one.

    sandbox Pod: the program, and the relay (socat on 127.0.0.1:3128, as the engines' loopback)
      -> the proxy Pod's port 3128 (squid, on the Pod network) -> the allowed hosts

A standing NetworkPolicy denies the Pods of `filtered` everything, as `none`'s does; the run's
own policy adds egress to its proxy Pod's port and nothing else (no DNS: the proxy resolves
names), and the proxy Pod's lets in its sandbox alone; all need a CNI that enforces
NetworkPolicy. The run's policies are owned by the proxy Pod (their ownerReferences), so
whatever deletes it (isol8, `isol8 cleanup`, the reaper, an eviction) deletes them too, and
leaves its sandbox, if it still runs, with no way out at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from isol8 import labels as L
from isol8.backends import reaper
from isol8.backends.attached import QUIET_S, Attached, ProxyLog, quietly
from isol8.backends.kubernetes import argv as K
from isol8.backends.kubernetes.backend import READY_TIMEOUT
from isol8.backends.kubernetes.manifest import (
    PROXY_CONTAINER,
    egress_policies,
    proxy_pod_manifest,
    relay_container,
)
from isol8.backends.kubernetes.pods import parse_json
from isol8.core.egress import PROXY_IMAGE, PROXY_PORT, Decision, Egress, squid_config
from isol8.errors import RunFailed, UsageError
from isol8.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.backends.kubernetes.backend import KubeBackend
    from isol8.backends.kubernetes.pods import PodRun
    from isol8.core.sandbox import ContainerSpec

log = get_logger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
READY_MARKER = "Accepting HTTP Socket connections"


def run_filtered(
    backend: KubeBackend,
    spec: ContainerSpec,
    egress_policy: Egress,
    command: Sequence[str],
    *,
    stdin: Iterable[bytes],
    remove: bool,
    deadline_s: int,
) -> PodRun:
    """KubeBackend.run of a filtered sandbox (spec.policy.egress: egress_policy): its egress first,
    then its Pod with the relay."""
    if not remove:
        raise UsageError("a filtered run's Pod cannot be kept: its way out goes with the run (use --net none)")
    egress = KubeEgress(backend, spec.name, egress_policy, spec.labels)
    # the proxy is up before the sandbox's Pod is Ready and its program starts: it lasts that much longer
    relay = egress.start(deadline_s + 2 * READY_TIMEOUT + int(START_TIMEOUT_S))
    try:
        backend.create(spec, deadline_s, relay=relay)
    except BaseException:
        backend.remove_quietly(spec.name)  # a create that failed late may have made it
        egress.close()
        raise
    return backend.exec_run(spec.name, command, stdin, remove, egress)


class KubeEgress:
    """The proxy Pod and policies of one filtered sandbox: start() before its Pod is created,
    close() once it is gone."""

    def __init__(self, backend: KubeBackend, sandbox: str, egress: Egress, labels: Mapping[str, str]) -> None:
        self.backend = backend
        self.sandbox = sandbox
        self.egress = egress
        self.proxy = f"{sandbox}-proxy"
        kept = {k: v for k, v in labels.items() if k not in (L.RUNTIME, L.RUN_ID)}
        self.labels = {**kept, L.EGRESS_OF: sandbox, **reaper.owner_label()}
        self.image = backend.local_image(PROXY_IMAGE)
        self.log = ProxyLog()
        self._squid: Attached | None = None

    def start(self, deadline_s: int) -> dict[str, Any]:
        """The proxy Pod, its policies and squid, ready; the relay container for the sandbox's Pod."""
        settings = self.backend.settings
        pod = proxy_pod_manifest(
            self.proxy,
            self.image,
            {**L.run_labels(self.proxy), **self.labels},
            self.egress.hosts,
            settings,
            deadline_s=deadline_s,
        )
        self.backend.watch(self.proxy)
        try:
            made = self.backend.call(K.create_argv(settings, "json"), input=json.dumps(pod).encode())
            uid = str((parse_json(made.stdout).get("metadata") or {}).get("uid") or "")
            policies = egress_policies(self.sandbox, self.labels, settings, owner=(self.proxy, uid))
            listed = {"apiVersion": "v1", "kind": "List", "items": policies}
            self.backend.call(K.create_argv(settings), input=json.dumps(listed).encode())
            self.backend.wait_ready(self.proxy, self.image)
            address = str(((self.backend.pod(self.proxy) or {}).get("status") or {}).get("podIP") or "")
            self._squid = Attached(
                K.exec_argv(settings, self.proxy, ["squid", "-N", "-f", "/dev/stdin"], PROXY_CONTAINER),
                stdin=[squid_config(self.egress, listen=str(PROXY_PORT)).encode()],
                marker=READY_MARKER,
                on_line=self.log.line,
                verbose=True,
                cwd=None,
            )
            self._ready(self._squid)
            return relay_container(self.image, address)
        except BaseException:
            self.close()
            raise

    def _ready(self, squid: Attached) -> None:
        if squid.ready.wait(START_TIMEOUT_S) and not squid.ended:
            return
        squid.kill()
        code = squid.proc.poll()
        problem = "did not start" if code is not None else f"did not start within {START_TIMEOUT_S:g}s"
        raise RunFailed(list(squid.proc.argv), code, "", "\n".join(squid.tail), message=f"the egress proxy {problem}")

    def close(self) -> tuple[Decision, ...]:
        """Delete the proxy Pod (its policies go with it), its log's decisions read until it has
        been quiet for QUIET_S (squid logs a request when it ends)."""
        if self._squid is not None:
            self._squid.quiet(QUIET_S, STOP_TIMEOUT_S)
        quietly(lambda: self.backend.remove_containers([self.proxy]))
        if self._squid is not None and not self._squid.stop(STOP_TIMEOUT_S):
            self._squid.kill()
        return self.log.finish()
