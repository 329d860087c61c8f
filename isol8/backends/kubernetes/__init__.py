"""Kubernetes through kubectl: sandbox Pods from pure manifests (manifest.py) and the kubectl
commands that create, reach and remove them (argv.py). Not yet a backend open_backend chooses:
the run path over `kubectl exec` is still to come (issue 16)."""
