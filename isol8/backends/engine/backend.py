"""The docker/podman backend: argv from its argv module, run by isol8.process, failures typed, safe calls retried."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from isol8 import labels as L
from isol8.backends import reaper
from isol8.backends.engine import argv as A
from isol8.backends.engine.dialect import Dialect, endpoint_key, endpoint_shown
from isol8.backends.engine.images import ImageCalls, inspected
from isol8.core.sandbox import ContainerSpec, SandboxPolicy
from isol8.errors import (
    ContainerNameInUse,
    ContainerNotFound,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
    FileTooLarge,
    UsageError,
)
from isol8.log import get_logger
from isol8.process import Completed, StreamingProcess, run_process, run_process_bytes

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from isol8.backends.base import Planned
    from isol8.backends.engine.egress import FilteredRun
    from isol8.backends.engine.retry import RetryPolicy
    from isol8.models import Captured, ContainerInfo, EngineInfo

log = get_logger(__name__)

QUERY_TIMEOUT = 30.0
START_TIMEOUT = 120.0  # creating and starting a container on a loaded machine
# The engine's own kill (podman run --timeout) comes this long after the wrapper's watchdog.
ENGINE_BACKSTOP_EXTRA_S = 10


class EngineBackend(ImageCalls):
    """A docker or podman engine, driven through its command line: the first isol8 backend (see backends/base.py)."""

    def __init__(
        self, dialect: Dialect, *, retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.dialect = dialect
        self._retry = retry  # None: RetryPolicy's defaults, loaded with the first idempotent call
        self._sleep = sleep

    builds_images = True

    @property
    def name(self) -> str:
        return self.dialect.name

    def call(
        self,
        argv: Sequence[str],
        *,
        timeout: float = QUERY_TIMEOUT,
        input: bytes | None = None,
        idempotent: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        """Run one engine command; raise the classified EngineError when it fails."""

        def once() -> Completed:
            done = run_process(argv, timeout=timeout, input=input, env=env, cwd=cwd)
            if done.returncode != 0:
                raise self.classify(done.argv, done.returncode, done.stdout, done.stderr)
            return done

        return once() if not idempotent else self.retried(once)

    def client_cwd(self) -> str | None:
        """The working directory for engine clients that start containers (see Dialect.private_cwd)."""
        if not self.dialect.private_cwd:
            return None
        from isol8.core.caches import cache_dir_name

        path = os.path.join(cache_dir_name(), f"{self.name}-cwd")
        os.makedirs(path, exist_ok=True)
        return path

    def classify(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> EngineError:
        from isol8.backends.engine.classify import classify  # only once the engine has failed

        at = len(self.dialect.cli)
        return classify(argv, returncode, stdout, stderr, self.name, argv[at] if len(argv) > at else "")

    def local_image(self, ref: str) -> str:
        return self.dialect.local_image(ref)

    @property
    def endpoint(self) -> str | None:
        return endpoint_shown(self.dialect, os.environ)

    @property
    def cache_key(self) -> str:
        return endpoint_key(self.dialect, os.environ)

    def run(
        self,
        spec: ContainerSpec,
        command: Sequence[str],
        *,
        stdin: Iterable[bytes],
        remove: bool,
        backstop_s: int,
    ) -> StreamingProcess | FilteredRun:
        if spec.policy.egress is None:
            return self._run(spec, command, stdin, remove, backstop_s, None)
        from isol8.backends.engine.egress import EgressProxy, FilteredRun

        egress = EgressProxy(self, spec.name, spec.policy.egress, spec.labels)
        network = egress.start()
        try:
            return FilteredRun(self, spec.name, self._run(spec, command, stdin, remove, backstop_s, network), egress)
        except BaseException:
            egress.close()
            raise

    def run_installer(
        self, spec: ContainerSpec, command: Sequence[str], *, stdin: Iterable[bytes], backstop_s: int
    ) -> StreamingProcess:
        if spec.policy.network != "none":
            raise ValueError("an installer's policy has no network: it gets the engine's default one")
        return self._run(spec, command, stdin, True, backstop_s, A.ENGINE_NETWORK)

    def planned_run(
        self, spec: ContainerSpec, command: Sequence[str], *, remove: bool, backstop_s: int
    ) -> list[Planned]:
        if spec.policy.egress is not None:
            raise UsageError("--dry-run shows one command: a filtered run starts its own proxy and relay first")
        return [(self._run_argv(spec, command, remove, backstop_s, None), None)]

    def _run(
        self,
        spec: ContainerSpec,
        command: Sequence[str],
        stdin: Iterable[bytes],
        remove: bool,
        backstop_s: int,
        network: str | None,
    ) -> StreamingProcess:
        argv = self._run_argv(spec, command, remove, backstop_s, network)
        reaper.watch(self.dialect, spec.name)
        return StreamingProcess(argv, stdin=stdin, cwd=self.client_cwd())

    def _run_argv(
        self, spec: ContainerSpec, command: Sequence[str], remove: bool, backstop_s: int, network: str | None
    ) -> list[str]:
        return A.run_argv(
            self.dialect,
            name=spec.name,
            image=spec.image,
            policy=spec.policy,
            labels={**spec.labels, **reaper.owner_label()},
            command=command,
            remove=remove,
            engine_timeout_s=backstop_s + ENGINE_BACKSTOP_EXTRA_S,
            network=network,
        )

    def start_standby(self, spec: ContainerSpec, *, outlives: bool = False) -> str:
        if spec.policy.egress is not None:
            raise UsageError("a filtered network is for single runs: a standby container (a session) cannot have one")
        owner = {} if outlives else reaper.owner_label()
        argv = A.standby_argv(
            self.dialect, name=spec.name, image=spec.image, policy=spec.policy, labels={**spec.labels, **owner}
        )
        if not outlives:
            reaper.watch(self.dialect, spec.name)
        try:
            done = self.call(argv, timeout=START_TIMEOUT, cwd=self.client_cwd())
        except ContainerNameInUse:
            raise  # another's container of that name: never removed here
        except EngineError:
            if not outlives:  # a fleet session's name may be another replica's by now (lookup removes a dead one)
                self._remove_quietly(spec.name)
            raise
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else spec.name

    def session_control(
        self, name: str, verb: str, args: Sequence[str] = (), *, data: bytes = b"", timeout: float = QUERY_TIMEOUT
    ) -> str:
        from isol8.backends.engine.session_record import session_control_argv  # sessions only

        argv = session_control_argv(self.dialect, name=name, verb=verb, args=args)
        return self.call(argv, input=data, timeout=timeout, cwd=self.client_cwd()).stdout

    def exec(self, name: str, command: Sequence[str], *, stdin: Iterable[bytes]) -> StreamingProcess:
        argv = A.exec_argv(self.dialect, name=name, command=command)
        return StreamingProcess(argv, stdin=stdin, cwd=self.client_cwd())

    def probe(self, image: str, command: Sequence[str], policy: SandboxPolicy, *, timeout: float) -> Captured:
        from isol8.models import Captured  # the run path never needs the models (~2 ms to import)

        name = L.container_name("probe")
        labels = {**L.run_labels(name), **reaper.owner_label()}
        argv = A.probe_argv(self.dialect, name=name, image=image, policy=policy, labels=labels, command=command)
        reaper.watch(self.dialect, name)
        done = None
        try:
            done = run_process(argv, timeout=timeout, cwd=self.client_cwd())
        finally:  # gone with --rm if it succeeded; a failure, a hang or an interrupt may leave it behind
            if done is not None and done.returncode == 0:
                self.disown([name])
            else:
                self._remove_quietly(name)
        return Captured(done.returncode, done.stdout, done.stderr)

    def _remove_quietly(self, name: str) -> None:
        try:
            self.remove_containers([name])
        except EngineError as exc:
            log.warning("could not remove container %s: %s", name, exc)

    def write_file(self, name: str, path: str, data: bytes) -> None:
        argv = A.write_file_argv(self.dialect, name=name, path=path)
        self.call(argv, input=data, timeout=START_TIMEOUT, cwd=self.client_cwd())

    def read_file(self, name: str, path: str, *, limit: int) -> bytes:
        argv = A.read_file_argv(self.dialect, name=name, path=path, limit=limit + 1)
        code, data, stderr = run_process_bytes(argv, timeout=START_TIMEOUT, cwd=self.client_cwd())
        if code != 0:
            raise self.classify(argv, code, "", stderr)
        if len(data) > limit:
            raise FileTooLarge(path, limit)
        return data

    def disown(self, names: Collection[str] = ()) -> None:
        reaper.disown(names)

    def version(self) -> str:
        """`<engine> version`: the server version; raises EngineUnavailable when nobody answers."""
        done = self.call(A.version_argv(self.dialect), timeout=10, idempotent=True)
        version = done.stdout.strip()
        if not version or version.startswith("<no value>"):
            raise EngineUnavailable(
                done.argv, 0, done.stdout, done.stderr, message=f"{self.name} did not report a version"
            )
        return version

    def info(self) -> EngineInfo:
        from isol8.backends.engine.dialect import parse_info

        done = self.call(A.info_argv(self.dialect), idempotent=True)
        data = inspected(done.stdout)
        return parse_info(self.dialect, data if isinstance(data, dict) else {})

    def list_containers(self, labels: Mapping[str, str | None]) -> list[str]:
        done = self.call(A.ps_argv(self.dialect, labels), idempotent=True)
        return [line.strip() for line in done.stdout.split() if line.strip()]

    def inspect_containers(self, ids: Sequence[str]) -> list[ContainerInfo]:
        if not ids:
            return []
        try:
            text = self.call(A.container_inspect_argv(self.dialect, ids), idempotent=True).stdout
        except ContainerNotFound as exc:
            text = exc.stdout
        data = inspected(text)
        from isol8.models import ContainerInfo

        return [ContainerInfo.from_inspect(obj) for obj in data if isinstance(obj, dict)]

    def remove_containers(self, ids: Sequence[str]) -> None:
        """`rm -f`: a container that is already gone counts as removed."""
        if not ids:
            return
        try:
            self.call(A.rm_argv(self.dialect, ids), idempotent=True)
        except ContainerNotFound:
            remaining = self.inspect_containers(ids)
            if remaining:
                self.call(A.rm_argv(self.dialect, [c.id for c in remaining]), idempotent=True)
        self.disown(ids)

    def list_volumes(self, labels: Mapping[str, str | None]) -> list[str]:
        done = self.call(A.volumes_argv(self.dialect, labels), idempotent=True)
        return [line.strip() for line in done.stdout.split() if line.strip()]

    def volume_labels(self, names: Sequence[str]) -> dict[str, Mapping[str, str]]:
        if not names:
            return {}
        try:
            text = self.call(A.volume_inspect_argv(self.dialect, names), idempotent=True).stdout
        except EngineError as exc:  # one removed meanwhile: the others are still listed
            text = exc.stdout
        return {
            str(obj.get("Name")): {str(k): str(v) for k, v in (obj.get("Labels") or {}).items()}
            for obj in inspected(text)
            if isinstance(obj, dict)
        }

    def remove_volumes(self, names: Sequence[str]) -> None:
        if names:
            self.call(A.volume_rm_argv(self.dialect, names), idempotent=True)

    def kill(self, name: str) -> None:
        """`kill NAME`; a container that is gone or already stopped is fine."""
        try:
            self.call(A.kill_argv(self.dialect, name), timeout=15)
        except ContainerNotFound:
            return
        except (EngineUnavailable, EngineNotFound):
            raise
        except EngineError as exc:
            low = exc.stderr.lower()
            if "is not running" in low or "state improper" in low or "not running" in low:
                return
            raise
