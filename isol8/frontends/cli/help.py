"""What `isol8 --help` says: the description, the epilog, each command's one-line summary, and
`isol8 serve --help`'s own text."""

from __future__ import annotations

import os
import sys


# argparse's own words ("usage:", "options", its errors) in English, as isol8's are. Translated,
# it looks up each as a parser is built (gettext's search of the locale folders, afresh for
# every string), which costs every `isol8 run` ~1.5 ms, and importing gettext ~1 ms more; CPython
# ships no translations of them. So argparse is imported with these two words in gettext's place.
def _ngettext(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


_words = type(sys)("gettext")
vars(_words).update(gettext=str, ngettext=_ngettext)
_lent = sys.modules.setdefault("gettext", _words) is _words
try:
    import argparse
except ImportError:  # an argparse that asks gettext for more
    if not _lent:
        raise
    del sys.modules["gettext"]
    _lent = False
    import argparse
finally:
    if _lent:
        del sys.modules["gettext"]  # any later import of gettext gets the real one
vars(argparse).update(_=str, ngettext=_ngettext)  # when argparse had been imported before

DESCRIPTION = """\
Run untrusted code snippets (Python, Node.js, Bun, Deno, Bash) in locked-down
Docker or Podman containers: read-only root, no network, no capabilities, a
non-root user, and limits on time, memory, processes and output."""

EPILOG = """\
engine selection:
  --engine, else ISOL8_ENGINE, else `engine` in the config file, else the
  engine whose endpoint options are given, else podman when only
  CONTAINER_HOST or CONTAINER_CONNECTION is set, else a docker whose daemon
  answers, else podman. The endpoint (--context, --docker-host, --connection,
  --url, or the config's `backend` section, else the client's own DOCKER_HOST,
  DOCKER_CONTEXT, CONTAINER_HOST) may be another machine: isol8 assumes
  nothing of it is local (docs/engines.md).

configuration (each level over the one before, like git's):
  built-in defaults, the user file ~/.isol8/config.{json,yaml,yml}, the project
  file (the nearest isol8.config.{json,yaml,yml} in the working directory or its
  parents), --config FILE (else ISOL8_CONFIG), ISOL8_* variables, then flags.
  Mappings merge key by key; lists replace. `isol8 config --show-origin` shows
  which file or variable set each key.

exit status:
  0    success (isol8 run: the program's own exit code is passed through)
  1    error (a build failed, ...)
  2    usage or config error
  3    the engine is missing, unreachable or refuses this user
  124  isol8 run: the program timed out
  125  isol8 run: isol8 or the engine failed before the program ran
  130  interrupted (SIGINT); 143 terminated (SIGTERM); 141 standard output
       closed early (SIGPIPE, as in `isol8 run big.py | head`)

examples:
  isol8 run hello.py                   run a file (runtime from its extension)
  isol8 run -e 'print(1 + 1)'          run inline Python
  echo 'console.log(1)' | isol8 run -r node
  isol8 run --cmd 'ls -la /sandbox' --files ./project
  isol8 run --install numpy -e 'import numpy; print(numpy.__version__)'
  isol8 build --base python --tag my-py --install numpy
  isol8 setup                          build the runtime base images
  isol8 --engine podman setup -r python
  isol8 config --show-origin           every setting, and where it came from
  isol8 doctor                         what works here, and what to fix"""


# `isol8 serve --help` beyond its options: routes, start-up, policy, fleets and draining (docs/server.md)
SERVE_HELP = {
    "description": """\
Serve isol8 over HTTP: GET /health (no auth), POST /execute, POST /execute/stream
(Server-Sent Events of {type: stdout|stderr|error|exit, data}), POST /cleanup, and for
named sessions (sessionId in an execute request) GET /sessions, DELETE /session/ID,
POST /file and GET /file; with `Authorization: Bearer KEY`. Before listening it checks
the engine, builds missing base images and the config's prebuiltImages, and starts warm
pools (server.poolSize containers per runtime). Requests may tighten the config's
defaults (timeoutMs, memoryLimit, cpuLimit, pidsLimit, sandboxSize, tmpSize, shmSize,
maxOutputSize) but never exceed them; host network and other images only when the
config's server.allowHostNetwork / server.allowImages allow them. At most
maxConcurrent executions run; others wait up to server.queueTimeoutMs, then get 429.
Every process an execution starts ends with it, unless the first request of a session
sets options.keepBackground (its processes then outlive executions, and see theirs).
Replicas with the same server.fleet driving one engine share their sessions, which
live in the engine and outlive any replica (isol8 cleanup removes them only with --all
or --stale-after); each keeps its own warm pool and maxConcurrent. GET /health?ready=1
is 503 once SIGINT/SIGTERM start the drain: requests are still served for
server.drainMs, then it stops accepting, gives in-flight executions 10 s, kills the
rest and removes its containers (not a fleet's sessions); its images are kept. A
second signal stops at once. Behind HAProxy: examples/haproxy.cfg.""",
    "epilog": """\
examples:
  ISOL8_API_KEY=s3cret isol8 serve --port 3000
  isol8 --config fleet.json serve --port 3001   # server.fleet set in fleet.json
  curl -s 'localhost:3001/health?ready=1'       # 503 while draining""",
}


# What `isol8 --help` says of each command (aliases: the same command under another name).
SUMMARIES = {
    "run": "run code in a locked-down container",
    "build": "build a custom image with packages baked in",
    "images": "list custom images (found by label, whatever their tag)",
    "resolve": "show which image `run --install` would use, and why",
    "setup": "build the runtime base images and the config's prebuilt images",
    "serve": "serve an HTTP API for running code (needs isol8[server])",
    "mcp": "serve the Model Context Protocol on stdio, for agents (needs isol8[mcp])",
    "config": "print the merged configuration and where each key came from",
    "doctor": "check that isol8 can run here, and say what to fix",
    "cleanup": "remove containers (and with --images, images) that isol8 made",
}
ALIASES = {"images": ["list-custom"]}
COMMANDS = frozenset([*SUMMARIES, *(alias for names in ALIASES.values() for alias in names)])


# the global options that point the engine's client elsewhere: each sets the config's `backend`
# key of its name (isol8.backends.open_backend), and any of them replaces the config's endpoint
ENDPOINT_OPTIONS = (
    ("--context", "NAME", "docker context to use (config backend.context; also DOCKER_CONTEXT)"),
    ("--docker-host", "URL", "docker endpoint: unix://, ssh://USER@HOST or tcp://HOST:2376 (config backend.host)"),
    ("--connection", "NAME", "podman system connection to use (config backend.connection)"),
    ("--url", "URL", "podman service: unix:///PATH or ssh://USER@HOST/PATH (config backend.url)"),
)
ENDPOINT_DESTS = {"context": "context", "docker_host": "host", "connection": "connection", "url": "url"}


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=_terminal_columns() - 2)


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns, which argparse asks for (then takes 2) whenever it makes a
    formatter, once per argument: the same answer without importing shutil and its bz2 and lzma."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    if stdout is None:
        return 80
    try:
        return os.get_terminal_size(stdout.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80
