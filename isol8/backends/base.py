"""The backend seam: every operation isol8 performs on containers and images, whatever runs them.

Only annotations use these Protocols (the run path never imports this module): a backend is any object
with these methods, like isol8.backends.engine.EngineBackend. A new kind of backend is a new
sub-package beside engine/, chosen in isol8/backends/__init__.py."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from isol8.core.egress import Decision
from isol8.core.sandbox import ContainerSpec, SandboxPolicy
from isol8.errors import EngineError
from isol8.models import Captured, ContainerInfo, EngineInfo, ImageInfo

# one command a run would run, and what it would read on stdin: a document (a manifest), or None
Planned = tuple[list[str], Mapping[str, Any] | None]


class Process(Protocol):
    """A started run or exec whose output is read as it comes; leaving the block kills it."""

    argv: tuple[str, ...]

    @property
    def network_log(self) -> tuple[Decision, ...] | None:
        """A filtered run's proxy decisions, complete once the block is left; None for any other process."""
        ...

    def chunks(self, deadline: float | Callable[[], float] | None = None) -> Iterator[tuple[str, bytes]]: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def kill(self) -> None: ...

    def __enter__(self) -> Process: ...

    def __exit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    """What isol8 needs from whatever runs its containers (isol8/backends/engine: docker or podman)."""

    @property
    def name(self) -> str:
        """For people and cache keys: "docker", "podman"..."""
        ...

    @property
    def builds_images(self) -> bool:
        """It builds images (an engine); else its images come from a registry (a cluster)."""
        ...

    @property
    def cache_key(self) -> str:
        """Names this backend's engine in isol8's on-disk caches, so two engines never share an answer."""
        ...

    @property
    def endpoint(self) -> str | None:
        """Where its engine is, for people ("ssh://build-box", "context ci"); None: this machine's
        default engine. Anything but None may be another machine: nothing local is assumed of it."""
        ...

    def version(self) -> str:
        """The engine's version; raises EngineUnavailable when nothing answers."""
        ...

    def local_image(self, ref: str) -> str:
        """The name under which a locally built image `ref` is found."""
        ...

    def classify(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> EngineError: ...

    # -- runs ---------------------------------------------------------------------------------------

    def run(
        self,
        spec: ContainerSpec,
        command: Sequence[str],
        *,
        stdin: Iterable[bytes],
        remove: bool,
        backstop_s: int,
    ) -> Process:
        """Start a one-shot container running command (/bin/bash's arguments) with stdin streamed in.

        backstop_s: when the in-container watchdog fires; a backend may add a kill of its own after it."""
        ...

    def planned_run(
        self, spec: ContainerSpec, command: Sequence[str], *, remove: bool, backstop_s: int
    ) -> list[Planned]:
        """The commands run() would run, in order, each with the document it reads on stdin (a
        manifest) or None, running nothing (`isol8 run --dry-run`)."""
        ...

    def run_installer(
        self, spec: ContainerSpec, command: Sequence[str], *, stdin: Iterable[bytes], backstop_s: int
    ) -> Process:
        """Like run (removed when done), but on the network the backend's builds have: for isol8's
        run-time package installers (isol8.core.installs) alone, never a program. spec's policy has
        network none; its other limits hold."""
        ...

    def start_standby(self, spec: ContainerSpec, *, outlives: bool = False) -> str:
        """Start a container that idles (its keeper as PID 1) until executions are exec'd into it;
        its id. outlives: it is not this process's (a server fleet's session): never removed when
        this process dies. Raises ContainerNameInUse, removing nothing, when the name is taken."""
        ...

    def session_control(
        self, name: str, verb: str, args: Sequence[str] = (), *, data: bytes = b"", timeout: float = 30.0
    ) -> str:
        """One verb of a standby container's session record, run as root there (backends/engine/argv.py's
        SESSION_CONTROL, whose docstring lists them): what it printed."""
        ...

    def exec(self, name: str, command: Sequence[str], *, stdin: Iterable[bytes]) -> Process:
        """Exec command (/bin/bash's arguments) as the sandbox user in a standby container."""
        ...

    def probe(self, image: str, command: Sequence[str], policy: SandboxPolicy, *, timeout: float) -> Captured:
        """Run command in a throwaway locked-down container of image and capture what it prints."""
        ...

    def write_file(self, name: str, path: str, data: bytes) -> None:
        """Write data to path (parents created) as the sandbox user in a standby container."""
        ...

    def read_file(self, name: str, path: str, *, limit: int) -> bytes:
        """The bytes of path, a regular file, read as the sandbox user in a standby container.

        Raises FileTooLarge, having read no more than limit + 1 bytes, when it holds more than limit."""
        ...

    def disown(self, names: Collection[str] = ()) -> None:
        """Containers kept on purpose (or removed by label): no longer removed when isol8 dies.

        With no names: every container this process started."""
        ...

    # -- containers ---------------------------------------------------------------------------------

    def kill(self, name: str) -> None: ...

    def remove_containers(self, ids: Sequence[str]) -> None:
        """Remove (forcibly); one already gone counts as removed."""
        ...

    def list_containers(self, labels: Mapping[str, str | None]) -> list[str]:
        """IDs of the containers carrying every given label (value None: any value)."""
        ...

    def inspect_containers(self, ids: Sequence[str]) -> list[ContainerInfo]: ...

    # -- images -------------------------------------------------------------------------------------

    def list_volumes(self, labels: Mapping[str, str | None]) -> list[str]:
        """Names of the volumes with these labels (a filtered run's, backends/engine/egress.py)."""
        ...

    def volume_labels(self, names: Sequence[str]) -> dict[str, Mapping[str, str]]:
        """The labels of each volume named (one that is gone is left out)."""
        ...

    def remove_volumes(self, names: Sequence[str]) -> None:
        """Remove volumes; one already gone counts as removed."""
        ...

    def build(
        self,
        *,
        tag: str,
        context: str,
        dockerfile: str | None = None,
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> str:
        """Build context into tag, streaming its output line by line; returns the new image ID."""
        ...

    def inspect_images(self, refs: Sequence[str]) -> list[ImageInfo]:
        """The images found among refs, in one call; missing ones are skipped."""
        ...

    def image(self, ref: str) -> ImageInfo | None: ...

    def list_images(self, labels: Mapping[str, str | None]) -> list[str]:
        """IDs of the images carrying every given label (value None: any value)."""
        ...

    def info(self) -> EngineInfo:
        """The engine's version, rootless mode, cgroups and storage: for `isol8 doctor`."""
        ...

    def pull(self, ref: str, *, tls_verify: bool = True) -> None:
        """Fetch ref from its registry; EngineError when it cannot be had (unknown, unreachable...)."""
        ...

    def push(self, ref: str, *, tls_verify: bool = True) -> None:
        """Send the local image ref (a registry's repository and tag, given with tag()) there."""
        ...

    def tag(self, image: str, ref: str) -> None:
        """Give a local image one more name."""
        ...

    def registry_images(self, repository: str, *, tls_verify: bool = True, limit: int = 200) -> list[ImageInfo]:
        """The images of a registry's repository (up to limit tags), labels included, read from
        isol8's host without pulling them; their ids are digests. RegistryUnreadable if it cannot be read."""
        ...

    def remove_images(self, refs: Sequence[str]) -> list[EngineError]:
        """Remove each ref, never forced; returns the failures (in use...) instead of raising them."""
        ...
