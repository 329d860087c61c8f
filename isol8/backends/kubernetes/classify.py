"""kubectl's failures as isol8's typed errors, from what it prints (pinned by tests/unit/test_kube_backend.py)."""

from __future__ import annotations

from collections.abc import Sequence

from isol8.errors import (
    ContainerNameInUse,
    ContainerNotFound,
    EngineError,
    EngineNotFound,
    EnginePermissionDenied,
    EngineTimeout,
    EngineTransient,
    EngineUnavailable,
)

KUBECTL_HINT = (
    "install kubectl on PATH (Debian's kubernetes-client, or `pip install kubectl` in isol8's venv) "
    "and point it at the cluster (KUBECONFIG, or backend.context in the config)"
)

# what kubectl prints when it reaches no API server (refused, unknown host, no config, no credentials)
_UNREACHABLE = (
    "unable to connect to the server",
    "the connection to the server",
    "couldn't get current server api group list",
    "no configuration has been provided",
    "you must be logged in to the server",
    "context was not found",
    'context "',
)


def classify(argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> EngineError:
    low = stderr.lower()
    if returncode is None and not stderr:
        return EngineNotFound(argv, None, message=f"{argv[0]}: command not found", hint=KUBECTL_HINT)
    if "(notfound)" in low or " not found" in low and "error from server" in low:
        return ContainerNotFound(argv, returncode, stdout, stderr)
    if "(conflict)" in low:  # changed since it was read: read it again
        return EngineTransient(argv, returncode, stdout, stderr)
    if "(alreadyexists)" in low:
        return ContainerNameInUse(argv, returncode, stdout, stderr)
    if "(forbidden)" in low or "(unauthorized)" in low:
        return EnginePermissionDenied(
            argv,
            returncode,
            stdout,
            stderr,
            hint="isol8's account needs create, get, list, patch, delete on pods, create on pods/exec, and "
            "get, create, patch on networkpolicies in its namespace (deploy/kubernetes/isol8-server.yaml has the Role)",
        )
    if any(words in low for words in _UNREACHABLE):
        return EngineUnavailable(argv, returncode, stdout, stderr, hint=KUBECTL_HINT)
    if "timed out waiting for the condition" in low:
        return EngineTimeout(argv, returncode, stdout, stderr)
    return EngineError(argv, returncode, stdout, stderr)
