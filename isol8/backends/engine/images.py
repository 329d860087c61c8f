"""The docker/podman backend's image calls: inspect, list, pull, push, tag, remove, build (a mixin
of EngineBackend, whose `call` runs them; backends/engine/backend.py has the containers)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from isol8.backends.engine import argv as A
from isol8.errors import EngineError, EngineNotFound, EngineUnavailable, ImageNotFound

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from isol8.backends.engine.dialect import Dialect
    from isol8.backends.engine.retry import RetryPolicy
    from isol8.models import ImageInfo
    from isol8.process import Completed

    T = TypeVar("T")

BUILD_TIMEOUT = 3600.0


class ImageCalls:
    dialect: Dialect
    _retry: RetryPolicy | None
    _sleep: Callable[[float], None]

    def retried(self, once: Callable[[], T]) -> T:
        """once(), tried again as the retry policy says when it fails (a plain run never loads it)."""
        if self._retry is None:
            from isol8.backends.engine.retry import RetryPolicy

            self._retry = RetryPolicy()
        result: T = self._retry.retrying(self._sleep)(once)
        return result

    if TYPE_CHECKING:

        def call(
            self,
            argv: Sequence[str],
            *,
            timeout: float = ...,
            input: bytes | None = None,
            idempotent: bool = False,
            env: Mapping[str, str] | None = None,
            cwd: str | None = None,
        ) -> Completed: ...

        def classify(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> EngineError: ...

    def inspect_images(self, refs: Sequence[str]) -> list[ImageInfo]:
        """`image inspect REF...`: the images found, in one call; missing refs are skipped."""
        if not refs:
            return []
        argv = A.image_inspect_argv(self.dialect, [self.dialect.local_image(r) for r in refs])
        try:
            done = self.call(argv, idempotent=True)
            text = done.stdout
        except ImageNotFound as exc:
            text = exc.stdout  # both engines print the images they found, then fail for the rest
        data = inspected(text)
        from isol8.models import ImageInfo

        return [ImageInfo.from_inspect(obj) for obj in data if isinstance(obj, dict)]

    def image(self, ref: str) -> ImageInfo | None:
        return next(iter(self.inspect_images([ref])), None)

    def list_images(self, labels: Mapping[str, str | None]) -> list[str]:
        """IDs of the images carrying every given label (value None: any value)."""
        done = self.call(A.images_argv(self.dialect, labels), idempotent=True)
        return list(dict.fromkeys(line.strip().removeprefix("sha256:") for line in done.stdout.split() if line.strip()))

    def pull(self, ref: str, *, tls_verify: bool = True) -> None:
        self.call(A.pull_argv(self.dialect, ref, tls_verify=tls_verify), timeout=BUILD_TIMEOUT)

    def registry_images(self, repository: str, *, tls_verify: bool = True, limit: int = 200) -> list[ImageInfo]:
        from isol8.backends import registry

        return registry.images(repository, tls_verify=tls_verify, limit=limit)

    def tag(self, image: str, ref: str) -> None:
        self.call(A.tag_argv(self.dialect, image, ref))

    def push(self, ref: str, *, tls_verify: bool = True) -> None:
        self.call(A.push_argv(self.dialect, ref, tls_verify=tls_verify), timeout=BUILD_TIMEOUT)

    def remove_images(self, refs: Sequence[str]) -> list[EngineError]:
        """`rmi` each ref; returns the failures (in use, already gone...) instead of raising them."""
        failures: list[EngineError] = []
        for ref in refs:
            try:
                self.call(A.rmi_argv(self.dialect, [ref]), idempotent=True)
            except ImageNotFound:
                pass
            except (EngineUnavailable, EngineNotFound):
                raise
            except EngineError as exc:
                failures.append(exc)
        return failures

    def build(
        self,
        *,
        tag: str,
        context: str,
        dockerfile: str | None = None,
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        on_output: Callable[[str], None] | None = None,
        timeout: float = BUILD_TIMEOUT,
    ) -> str:
        """`build`, streaming its output line by line to on_output; returns the new image ID.

        Only a daemon that cannot be reached is retried: the build never started then.
        """

        def once() -> str:
            import tempfile

            from isol8.backends.engine.build import run_build

            with tempfile.TemporaryDirectory(prefix="isol8-build-") as tmp:
                iidfile = os.path.join(tmp, "iid")
                argv = A.build_argv(
                    self.dialect,
                    tag=tag,
                    context=context,
                    dockerfile=dockerfile,
                    build_args=build_args,
                    labels=labels,
                    iidfile=iidfile,
                )
                return run_build(self, argv, tag, iidfile, on_output, timeout)

        return self.retried(once)


def inspected(text: str) -> Any:
    import json  # an inspect command's JSON array (no output: nothing found); a plain run never loads json

    return json.loads(text) if text.strip() else []
