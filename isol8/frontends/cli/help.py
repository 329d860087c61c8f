"""What `isol8 --help` says: the description, the epilog, each command's one-line summary."""

from __future__ import annotations

DESCRIPTION = """\
Run untrusted code snippets (Python, Node.js, Bun, Deno, Bash) in locked-down
Docker or Podman containers: read-only root, no network, no capabilities, a
non-root user, and limits on time, memory, processes and output."""

EPILOG = """\
engine selection:
  --engine, else ISOL8_ENGINE, else `engine` in the config file, else a docker
  whose daemon answers, else podman.

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
