"""Kubernetes through kubectl (`--backend kubernetes`): sandbox Pods from pure manifests
(manifest.py), the kubectl commands that create, reach and remove them (argv.py), and the
backend that runs them (backend.py). docs/kubernetes.md says what it needs of a cluster."""
