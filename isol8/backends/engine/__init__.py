"""The docker/podman backend: their differences (dialect.py), pure argv (argv.py), the driver (backend.py)
and the watcher that removes a dead isol8's containers (reaper.py)."""
