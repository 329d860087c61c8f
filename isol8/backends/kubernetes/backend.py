"""The Kubernetes backend: each sandbox a Pod (manifest.py), reached through kubectl (argv.py).

A run is `kubectl create -f -` of its Pod (its NetworkPolicy applied first for `none`), a wait
until it is Ready, then the engines' wrapper and payload over `kubectl exec -i` on stdin, and
`kubectl delete` with no grace when it ends, whatever ended it. The Pod's own watchdogs are the
wrapper's (as on the engines) and activeDeadlineSeconds; this process's reaper (backends/reaper.py)
deletes its Pods if it dies. A cluster builds no images: they come from a registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from isol8 import labels as L
from isol8.backends import reaper
from isol8.backends.kubernetes import argv as K
from isol8.backends.kubernetes import session_record as R
from isol8.backends.kubernetes.classify import KUBECTL_HINT, classify
from isol8.backends.kubernetes.manifest import KubeSettings, network_policy_manifest, pod_manifest, split_labels
from isol8.backends.kubernetes.pods import TERMINATED, PodRun, parse_json, pod_info, waiting
from isol8.core.sandbox import READ_FILE, WRITE_FILE, ContainerSpec, SandboxPolicy
from isol8.errors import (
    ContainerNotFound,
    EngineError,
    EngineNotFound,
    EngineTransient,
    EngineUnavailable,
    FileTooLarge,
    ImageMissing,
    RunFailed,
    UsageError,
)
from isol8.log import get_logger
from isol8.process import Completed, StreamingProcess, run_process, run_process_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from isol8.backends.base import Planned
    from isol8.backends.kubernetes.egress import KubeEgress
    from isol8.models import Captured, ContainerInfo, EngineInfo, ImageInfo

log = get_logger(__name__)

QUERY_TIMEOUT = 30.0
READY_TIMEOUT = 120  # scheduling, pulling the image and starting the container on a busy cluster
# the Pod's own deadline comes this long after the wrapper's watchdog: its start (scheduling, the
# image's pull) counts towards activeDeadlineSeconds
DEADLINE_EXTRA_S = READY_TIMEOUT + 10
# why a Pod waits that will never be Ready by waiting longer
_IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
_STUCK_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff")

# The watcher's sweep (see backends/reaper.py): it deletes this process's Pods by their owner label.
REAPER_SCRIPT = reaper.script('  "$@" delete pod -l "$label" --grace-period=0 --force --wait=false >/dev/null 2>&1\n')
DENIED = ("none", "filtered")  # the networks a standing NetworkPolicy denies everything


class KubeBackend:
    """Sandboxes as Pods of one namespace, driven through kubectl (see backends/base.py)."""

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        self._policies_applied: set[str] = set()  # the standing NetworkPolicies, once per process

    name = "kubernetes"
    builds_images = False  # the nodes pull them from a registry

    @property
    def cache_key(self) -> str:
        return f"kubernetes:{self.settings.context or ''}:{self.settings.namespace}"

    @property
    def endpoint(self) -> str | None:
        where = f"namespace {self.settings.namespace}"
        return f"context {self.settings.context}, {where}" if self.settings.context else where

    def call(self, argv: Sequence[str], *, timeout: float = QUERY_TIMEOUT, input: bytes | None = None) -> Completed:
        try:
            done = run_process(argv, timeout=timeout, input=input)
        except EngineNotFound as exc:
            raise EngineNotFound(exc.argv, None, message=exc.message, hint=KUBECTL_HINT) from None
        if done.returncode != 0:
            raise self.classify(done.argv, done.returncode, done.stdout, done.stderr)
        return done

    def classify(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> EngineError:
        return classify(argv, returncode, stdout, stderr)

    def version(self) -> str:
        """The API server's version; EngineUnavailable when kubectl reaches none."""
        done = self.call(K.version_argv(self.settings), timeout=15)
        data = parse_json(done.stdout)
        server = (data.get("serverVersion") or {}).get("gitVersion")
        if not server:
            raise EngineUnavailable(done.argv, 0, done.stdout, done.stderr, message="kubectl reached no API server")
        return str(server)

    def local_image(self, ref: str) -> str:
        """An isol8 base image (isol8:python) as the nodes pull it: in the settings' images
        repository (where `isol8 setup --push` puts it), else as named (a node that has it)."""
        if self.settings.images and ref.startswith("isol8:"):
            return f"{self.settings.images}/{ref}"
        return ref

    # -- runs ---------------------------------------------------------------------------------------

    def _manifests(
        self, spec: ContainerSpec, deadline_s: int | None, outlives: bool = False, relay: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """(the standing NetworkPolicy of its network, if it has one, then) the Pod of spec (a filtered
        one's with its relay)."""
        owner = {} if outlives else reaper.owner_label()
        pod = pod_manifest(
            spec.name,
            spec.image,
            spec.policy,
            {**spec.labels, **owner},
            self.settings,
            deadline_s=deadline_s,
            relay=relay,
        )
        network = spec.policy.network
        return [network_policy_manifest(self.settings, network), pod] if network in DENIED else [pod]

    def create(
        self,
        spec: ContainerSpec,
        deadline_s: int | None,
        *,
        outlives: bool = False,
        relay: dict[str, Any] | None = None,
    ) -> None:
        """Create spec's Pod and wait until it is Ready; on any failure it is deleted (unless it was
        another's: a name in use)."""
        *policy, pod = self._manifests(spec, deadline_s, outlives, relay)
        if policy and spec.policy.network not in self._policies_applied:
            self.call(K.apply_argv(self.settings), input=json.dumps(policy[0]).encode())
            self._policies_applied.add(spec.policy.network)
        if not outlives:
            self.watch(spec.name)
        self.call(K.create_argv(self.settings), input=json.dumps(pod).encode(), timeout=READY_TIMEOUT)
        try:
            self.wait_ready(spec.name, spec.image)
        except BaseException:
            self.remove_quietly(spec.name)
            raise

    def wait_ready(self, name: str, image: str) -> None:
        """Until the Pod is Ready, in slices: between them its status says whether it ever will be."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            slice_s = int(max(1, min(5, deadline - time.monotonic())))
            argv = K.wait_ready_argv(self.settings, name, slice_s)
            done = run_process(argv, timeout=slice_s + QUERY_TIMEOUT)
            if done.returncode == 0:
                return
            pod = self.pod(name)
            if pod is None:
                raise ContainerNotFound(argv, done.returncode, done.stdout, done.stderr, message=f"pod {name} is gone")
            phase, reason, message = waiting(pod)
            if reason in _IMAGE_REASONS:
                raise ImageMissing(
                    argv,
                    125,
                    message=f"image {image} cannot be pulled by the cluster ({reason}: {message})".rstrip(": )") + ")",
                    hint="push it to a registry the nodes reach (isol8 build --push) and name it there",
                )
            if reason in _STUCK_REASONS or phase in ("Failed", "Succeeded"):
                raise RunFailed(argv, 125, message=f"pod {name} did not start: {reason or phase} {message}".strip())
            if time.monotonic() >= deadline:
                raise RunFailed(argv, None, message=f"pod {name} was not ready within {READY_TIMEOUT}s ({phase})")

    def watch(self, name: str) -> None:
        """From now on, Pod `name` is deleted by this process's reaper if it dies."""
        reaper.watch_argv(self._reaper_key(), self._reaper_argv, name)

    def pod(self, name: str) -> dict[str, Any] | None:
        try:
            return parse_json(self.call(K.get_pod_argv(self.settings, name)).stdout)
        except ContainerNotFound:
            return None

    def run(
        self,
        spec: ContainerSpec,
        command: Sequence[str],
        *,
        stdin: Iterable[bytes],
        remove: bool,
        backstop_s: int,
    ) -> PodRun:
        deadline_s = backstop_s + DEADLINE_EXTRA_S
        if spec.policy.egress is not None:
            from isol8.backends.kubernetes.egress import run_filtered

            egress = spec.policy.egress
            return run_filtered(self, spec, egress, command, stdin=stdin, remove=remove, deadline_s=deadline_s)
        self.create(spec, deadline_s)
        return self.exec_run(spec.name, command, stdin, remove, None)

    def exec_run(
        self, name: str, command: Sequence[str], stdin: Iterable[bytes], remove: bool, egress: KubeEgress | None
    ) -> PodRun:
        try:
            proc = StreamingProcess(K.exec_argv(self.settings, name, ["/bin/bash", *command]), stdin=stdin)
        except BaseException:
            self.remove_quietly(name)
            if egress is not None:
                egress.close()
            raise
        return PodRun(self, name, proc, remove=remove, egress=egress)

    def planned_run(
        self, spec: ContainerSpec, command: Sequence[str], *, remove: bool, backstop_s: int
    ) -> list[Planned]:
        if spec.policy.egress is not None:  # as on the engines
            raise UsageError("--dry-run shows no filtered run: its proxy Pod's address is known only once it runs")
        *policy, pod = self._manifests(spec, backstop_s + DEADLINE_EXTRA_S)
        planned: list[Planned] = [(K.apply_argv(self.settings), p) for p in policy]
        planned += [
            (K.create_argv(self.settings), pod),
            (K.wait_ready_argv(self.settings, spec.name, READY_TIMEOUT), None),
            (K.exec_argv(self.settings, spec.name, ["/bin/bash", *command]), None),
        ]
        if remove:
            planned.append((K.delete_argv(self.settings, [spec.name]), None))
        return planned

    def run_installer(
        self, spec: ContainerSpec, command: Sequence[str], *, stdin: Iterable[bytes], backstop_s: int
    ) -> PodRun:
        """A run on the Pod network (no NetworkPolicy: the cluster's default), as the engines' installer
        runs on their build network; only isol8's installer, never a program."""
        if spec.policy.network != "none":
            raise ValueError("an installer's policy has no network: it gets the Pod network")
        host = spec._replace(policy=spec.policy._replace(network="host"))
        return self.run(host, command, stdin=stdin, remove=True, backstop_s=backstop_s)

    def start_standby(self, spec: ContainerSpec, *, outlives: bool = False) -> str:
        if spec.policy.egress is not None:
            raise UsageError("a filtered network is for single runs: a standby Pod (a session) cannot have one")
        self.create(spec, None, outlives=outlives)
        return spec.name

    def session_control(
        self, name: str, verb: str, args: Sequence[str] = (), *, data: bytes = b"", timeout: float = QUERY_TIMEOUT
    ) -> str:
        """The verb on the record in the Pod's annotations (session_record.py): decided on the Pod as
        read, patched only if it is still so, else decided again."""
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod(name)
            if pod is None:
                raise ContainerNotFound(K.get_pod_argv(self.settings, name), 1, message=f"pod {name} is gone")
            record = R.read(pod)
            decision = R.decide(verb, args, data.decode("utf-8", "replace"), record, int(time.time()))
            if decision.failure is not None:
                code, message = decision.failure
                raise EngineError(K.get_pod_argv(self.settings, name), code, message=message)
            if decision.sweep:
                self.call(K.exec_argv(self.settings, name, ["/bin/bash", "-c", R.SWEEP]), timeout=timeout)
            if not decision.changes:
                return decision.output
            try:
                self.call(
                    K.patch_argv(self.settings, name), input=json.dumps(R.patch(record, decision.changes)).encode()
                )
                return decision.output
            except EngineTransient:  # changed since it was read (Conflict): decide again
                if time.monotonic() > deadline:
                    raise

    def exec(self, name: str, command: Sequence[str], *, stdin: Iterable[bytes]) -> PodRun:
        proc = StreamingProcess(K.exec_argv(self.settings, name, ["/bin/bash", *command]), stdin=stdin)
        return PodRun(self, name, proc, remove=False)

    def probe(self, image: str, command: Sequence[str], policy: SandboxPolicy, *, timeout: float) -> Captured:
        from isol8.models import Captured

        name = L.container_name("probe")
        self.create(ContainerSpec(name, image, policy, L.run_labels(name)), int(timeout) + DEADLINE_EXTRA_S)
        try:
            done = run_process(K.exec_argv(self.settings, name, command), timeout=timeout)
        finally:
            self.remove_quietly(name)
        return Captured(done.returncode, done.stdout, TERMINATED.sub(b"", done.stderr.encode()).decode())

    def write_file(self, name: str, path: str, data: bytes) -> None:
        argv = K.exec_argv(self.settings, name, ["/bin/bash", "-c", WRITE_FILE, "isol8", path])
        self.call(argv, input=data, timeout=READY_TIMEOUT)

    def read_file(self, name: str, path: str, *, limit: int) -> bytes:
        argv = K.exec_argv(self.settings, name, ["/bin/bash", "-c", READ_FILE, "isol8", path, str(limit + 1)])
        code, data, stderr = run_process_bytes(argv, timeout=READY_TIMEOUT)
        if code != 0:
            raise self.classify(argv, code, "", TERMINATED.sub(b"", stderr.encode()).decode())
        if len(data) > limit:
            raise FileTooLarge(path, limit)
        return data

    def disown(self, names: Collection[str] = ()) -> None:
        reaper.disown(names)

    def _reaper_key(self) -> tuple[str, ...]:
        return tuple(K.kubectl(self.settings))

    def _reaper_argv(self) -> list[str]:
        label = K.selector(reaper.owner_label())
        return ["/bin/sh", "-c", REAPER_SCRIPT, "isol8-reaper", label, *K.kubectl(self.settings)]

    # -- Pods -----------------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        self.remove_containers([name])

    def remove_containers(self, ids: Sequence[str]) -> None:
        """Delete the Pods now (no grace); one already gone counts as removed."""
        if ids:
            self.call(K.delete_argv(self.settings, list(ids)))
            self.disown(ids)

    def remove_quietly(self, name: str) -> None:
        try:
            self.remove_containers([name])
        except EngineError as exc:
            log.warning("could not delete pod %s: %s", name, exc)

    def list_containers(self, labels: Mapping[str, str | None]) -> list[str]:
        return [info.name for info in self._pods(labels)]

    def inspect_containers(self, ids: Sequence[str]) -> list[ContainerInfo]:
        if len(ids) <= 2:  # a session's lookup: by name
            return [pod_info(pod) for pod in map(self.pod, ids) if pod is not None]
        wanted = set(ids)
        return [info for info in self._pods({L.MANAGED: "true"}) if info.name in wanted]

    def _pods(self, labels: Mapping[str, str | None]) -> list[ContainerInfo]:
        """The Pods with these labels: selected by the API server on those a label can hold, then
        here on all of them (a value too long for a label is an annotation: pod_info merges them)."""
        selectable, _ = split_labels({k: v for k, v in labels.items() if v is not None})
        done = self.call(K.get_argv(self.settings, selectable or {L.MANAGED: "true"}))
        infos = [pod_info(item) for item in parse_json(done.stdout).get("items") or [] if isinstance(item, dict)]
        return [
            info
            for info in infos
            if all(key in info.labels and value in (None, info.labels[key]) for key, value in labels.items())
        ]

    # no volumes: a Pod's folders are its own emptyDirs
    def list_volumes(self, labels: Mapping[str, str | None]) -> list[str]:
        return []

    def volume_labels(self, names: Sequence[str]) -> dict[str, Mapping[str, str]]:
        return {}

    def remove_volumes(self, names: Sequence[str]) -> None:
        pass

    # -- images: the cluster's nodes pull them; isol8 reads them from the registry ------------------

    def build(self, **_: Any) -> str:
        raise UsageError("a cluster builds no images: build with docker or podman and --push it to the registry")

    def inspect_images(self, refs: Sequence[str]) -> list[ImageInfo]:
        return []

    def image(self, ref: str) -> ImageInfo | None:
        return None

    def list_images(self, labels: Mapping[str, str | None]) -> list[str]:
        return []

    def info(self) -> EngineInfo:
        from isol8.models import EngineInfo

        return EngineInfo(self.version(), True, "", (), f"the cluster's nodes ({self.endpoint})", True)

    def pull(self, ref: str, *, tls_verify: bool = True) -> None:
        pass  # each node pulls what its Pods name

    def push(self, ref: str, *, tls_verify: bool = True) -> None:
        raise UsageError("push from the engine that built the image (isol8 --engine podman build --push)")

    def tag(self, image: str, ref: str) -> None:
        raise UsageError("a cluster has no local images to tag")

    def registry_images(self, repository: str, *, tls_verify: bool = True, limit: int = 200) -> list[ImageInfo]:
        from isol8.backends import registry

        return registry.images(repository, tls_verify=tls_verify, limit=limit)

    def remove_images(self, refs: Sequence[str]) -> list[EngineError]:
        return []
