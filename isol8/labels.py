"""Label keys isol8 puts on its images and containers."""

MANAGED = "org.isol8.managed"
RUNTIME = "org.isol8.runtime"
BUILD_HASH = "org.isol8.build.hash"
BASE_IMAGE = "org.isol8.base.image"
DEPENDENCIES = "org.isol8.dependencies"
DEPS_HASH = "org.isol8.deps.hash"
SETUP = "org.isol8.setup"
# Engines copy image labels onto containers, so containers need a key no image carries:
# cleanup selects on RUN_ID, never on MANAGED alone.
RUN_ID = "org.isol8.run.id"
RUN_PID = "org.isol8.run.pid"
RUN_HOST = "org.isol8.run.host"
RUN_STARTED = "org.isol8.run.started"
RUN_OWNER = "org.isol8.run.owner"  # the isol8 process whose watcher (isol8/reaper.py) removes it
RESOLVED = "org.isol8.resolved"
AUTO = "org.isol8.auto"
