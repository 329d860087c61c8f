"""Pure argv builders for kubectl, as backends/engine/argv.py is for the engines; pinned exactly by
tests/unit/test_kube_manifest.py. A manifest goes on stdin (`-f -`), a program never in argv."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from isol8.backends.kubernetes.manifest import CONTAINER, KubeSettings


def kubectl(settings: KubeSettings, *args: str) -> list[str]:
    """kubectl with the settings' context and namespace before the command."""
    context = [f"--context={settings.context}"] if settings.context else []  # one word: never read as a flag
    return ["kubectl", *context, f"--namespace={settings.namespace}", *args]


def selector(labels: Mapping[str, str | None]) -> str:
    """A label selector: key=value, or key alone (value None) for any value."""
    return ",".join(key if value is None else f"{key}={value}" for key, value in sorted(labels.items()))


def version_argv(settings: KubeSettings) -> list[str]:
    return kubectl(settings, "version", "-o", "json")


def create_argv(settings: KubeSettings, output: str = "name") -> list[str]:
    """Create what stdin describes (a manifest as JSON); print what was made (its name, or json)."""
    return kubectl(settings, "create", "-f", "-", "-o", output)


def apply_argv(settings: KubeSettings) -> list[str]:
    """Create or update what stdin describes (the NetworkPolicy every `none` Pod relies on)."""
    return kubectl(settings, "apply", "-f", "-", "-o", "name")


def wait_ready_argv(settings: KubeSettings, name: str, timeout_s: int) -> list[str]:
    return kubectl(settings, "wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={timeout_s}s")


def exec_argv(settings: KubeSettings, name: str, command: Sequence[str], container: str = CONTAINER) -> list[str]:
    """Run command in the Pod's container, stdin attached (the wrapper reads its payload there)."""
    return kubectl(settings, "exec", "-i", f"pod/{name}", "-c", container, "--", *command)


def delete_argv(settings: KubeSettings, names: Sequence[str]) -> list[str]:
    """Remove Pods now: no grace period, no waiting, none missing counts as an error."""
    return kubectl(
        settings, "delete", "pod", *names, "--grace-period=0", "--force", "--wait=false", "--ignore-not-found"
    )


def delete_labelled_argv(settings: KubeSettings, labels: Mapping[str, str | None]) -> list[str]:
    return kubectl(settings, "delete", "pod", "-l", selector(labels), "--grace-period=0", "--force", "--wait=false")


def get_argv(settings: KubeSettings, labels: Mapping[str, str | None]) -> list[str]:
    """The Pods with these labels, as JSON (their phase, and the container's OOMKilled state)."""
    return kubectl(settings, "get", "pods", "-l", selector(labels), "-o", "json")


def get_pod_argv(settings: KubeSettings, name: str) -> list[str]:
    return kubectl(settings, "get", f"pod/{name}", "-o", "json")


def patch_argv(settings: KubeSettings, name: str) -> list[str]:
    """Merge-patch the Pod with the JSON on stdin (a session record's annotations); a patch that
    names a resourceVersion is refused (Conflict) once the Pod has changed."""
    return kubectl(settings, "patch", f"pod/{name}", "--type=merge", "--patch-file=/dev/stdin", "-o", "name")
