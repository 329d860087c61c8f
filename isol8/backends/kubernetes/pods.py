"""A Pod's run over `kubectl exec` (PodRun), and what `kubectl get` says of Pods, read."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from isol8.process import StreamingProcess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.backends.kubernetes.backend import KubeBackend
    from isol8.backends.kubernetes.egress import KubeEgress
    from isol8.core.egress import Decision
    from isol8.models import ContainerInfo

# kubectl's own report of a non-zero exit, after the program's output: not the program's stderr
# (its own write, which one read may join to the wrapper's last line)
TERMINATED = re.compile(rb"command terminated with exit code \d+\r?\n\Z")
_REPORT = b"command terminated with exit code "
# a line that is, so far, that report: a beginning of its words, or them with the code (and its end)
_REPORT_SO_FAR = re.compile(
    b"|".join(re.escape(_REPORT[:n]) for n in range(len(_REPORT), 0, -1)).join((b"(?:", b")"))
    + rb"|"
    + re.escape(_REPORT)
    + rb"\d+\r?\n?"
)


class PodRun:
    """A run or exec over `kubectl exec -i`: kubectl's own exit report is left out of the program's
    stderr; kill() deletes the Pod, since an exec'd program outlives its client; leaving a run's
    block deletes its Pod (unless it is kept), a filtered one's egress after it."""

    def __init__(
        self, backend: KubeBackend, name: str, proc: StreamingProcess, *, remove: bool, egress: KubeEgress | None = None
    ) -> None:
        self.backend = backend
        self.name = name
        self.proc = proc
        self.argv = proc.argv
        self.remove = remove
        self.egress = egress
        self.network_log: tuple[Decision, ...] | None = None

    def chunks(self, deadline: float | Callable[[], float] | None = None) -> Iterator[tuple[str, bytes]]:
        held = b""  # stderr's last line while it may still be kubectl's report (which may come in pieces)
        for stream, data in self.proc.chunks(deadline):
            if stream != "stderr":
                yield stream, data
                continue
            data, held = held + data, b""
            start = data.rfind(b"\n", 0, len(data) - 1) + 1
            if _REPORT_SO_FAR.fullmatch(data[start:]):
                data, held = data[:start], data[start:]
            if data:
                yield stream, data
        if held and not TERMINATED.fullmatch(held):
            yield "stderr", held

    def wait(self, timeout: float | None = None) -> int | None:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        if self.remove:
            self.backend.remove_quietly(self.name)

    def __enter__(self) -> PodRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.__exit__(*exc)
        try:
            if self.remove:
                self.backend.remove_quietly(self.name)
        finally:
            if self.egress is not None:
                self.network_log = self.egress.close()


def parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def waiting(pod: Mapping[str, Any]) -> tuple[str, str, str]:
    """(phase, why the container waits or ended, kubelet's message)."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            if key in state:
                return (
                    str(status.get("phase", "")),
                    str(state[key].get("reason", "")),
                    str(state[key].get("message", "")),
                )
    return str(status.get("phase", "")), "", ""


_STATUS = {"Pending": "created", "Running": "running", "Succeeded": "exited", "Failed": "exited"}


def pod_info(pod: Mapping[str, Any]) -> ContainerInfo:
    """A Pod as the engines' ContainerInfo (its labels with its annotations: values too long for labels)."""
    from isol8.models import ContainerInfo

    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    terminated: Mapping[str, Any] = {}
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or (
            (container.get("lastState") or {}).get("terminated") or {}
        )
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return ContainerInfo(
        id=str(meta.get("name", "")),
        name=str(meta.get("name", "")),
        labels={**(meta.get("annotations") or {}), **(meta.get("labels") or {})},
        running=status.get("phase") == "Running",
        exit_code=terminated.get("exitCode"),
        oom_killed=terminated.get("reason") == "OOMKilled",
        image=str(containers[0].get("image", "")),
        status=_STATUS.get(str(status.get("phase", "")), ""),
    )
