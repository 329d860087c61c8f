"""The one parser of the isol8 command line (stdlib only): main(), --help and the man page share it."""

from __future__ import annotations

import argparse

from isol8 import __version__
from isol8.backends import ENGINES
from isol8.defaults import RUN
from isol8.units import format_duration, format_size

TYPE_CHECKING = False  # typing costs ~8 ms to import: annotations only
if TYPE_CHECKING:
    pass


def _duration(key: str) -> str:
    return format_duration(RUN[key])


RUNTIMES = ("python", "node", "bun", "deno", "bash")

DESCRIPTION = """\
Run untrusted code snippets (Python, Node.js, Bun, Deno, Bash) in locked-down
Docker or Podman containers: read-only root, no network, no capabilities, a
non-root user, and limits on time, memory, processes and output."""

EPILOG = """\
engine selection:
  --engine, else ISOL8_ENGINE, else `engine` in the config file, else a docker
  whose daemon answers, else podman.

config file:
  --config, else ISOL8_CONFIG, else ./isol8.config.{json,yaml,yml}, else
  ~/.isol8/config.{json,yaml,yml}. See `isol8 config`.

exit status:
  0    success (isol8 run: the program's own exit code is passed through)
  1    error (a build failed, ...)
  2    usage or config error
  3    the engine is missing, unreachable or refuses this user
  124  isol8 run: the program timed out
  125  isol8 run: isol8 or the engine failed before the program ran
  130  interrupted (SIGINT); 143 terminated (SIGTERM)

examples:
  isol8 run hello.py                   run a file (runtime from its extension)
  isol8 run -e 'print(1 + 1)'          run inline Python
  echo 'console.log(1)' | isol8 run -r node
  isol8 run --cmd 'ls -la /sandbox' --files ./project
  isol8 run --install numpy -e 'import numpy; print(numpy.__version__)'
  isol8 build --base python --tag my-py --install numpy
  isol8 setup                          build the runtime base images
  isol8 --engine podman setup -r python
  isol8 config --json"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--engine/--config/--debug, accepted before and after the command name."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=default(None),
        help="container engine to use (default: ISOL8_ENGINE, the config, then auto-detect)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default(None),
        help="config file to use instead of the search path (also ISOL8_CONFIG)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="print every engine command line isol8 runs, and tracebacks (also ISOL8_DEBUG=1)",
    )


def _add_setup(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "setup",
        parents=[common],
        formatter_class=_Formatter,
        help="build the runtime base images and the config's prebuilt images",
        description=(
            "Build the base image isol8:<runtime> of each runtime that is missing or whose\n"
            "Dockerfile, build context or base image changed; up-to-date images are skipped.\n"
            "Then build the config file's prebuiltImages. Progress goes to stderr."
        ),
    )
    p.add_argument("--force", action="store_true", help="rebuild even when the images are up to date")
    p.add_argument(
        "-r",
        "--runtime",
        action="append",
        choices=RUNTIMES,
        metavar="RUNTIME",
        help=f"only this runtime (repeatable; default: all of {', '.join(RUNTIMES)})",
    )
    p.add_argument(
        "--base-image",
        action="append",
        default=[],
        metavar="RUNTIME=REF",
        help="build isol8:RUNTIME FROM this image instead of the Dockerfile's default "
        "(repeatable; overrides baseImages in the config)",
    )
    p.set_defaults(handler="setup")


def _add_config(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "config",
        parents=[common],
        formatter_class=_Formatter,
        help="print the merged configuration and the file it came from",
        description="Print the configuration in force: built-in defaults merged with the config file.",
    )
    p.add_argument("--json", action="store_true", help='print {"source": FILE|null, "config": {...}} as JSON')
    p.set_defaults(handler="config")


def _add_run(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        formatter_class=_Formatter,
        help="run code in a locked-down container",
        description=(
            "Run code from FILE, -e CODE, --cmd COMMAND or standard input in a fresh container:\n"
            "read-only root, /sandbox (the home and working directory) and /tmp as size-limited\n"
            "tmpfs, a non-root user, no capabilities, a seccomp profile that also denies\n"
            "unshare/setns/mount/ptrace/bpf/io_uring, no network unless --net host, and limits\n"
            "on time, memory (no swap), CPU, processes and output. The container is removed\n"
            "afterwards, also on timeout, Ctrl-C and SIGTERM. Defaults come from the config's\n"
            "`defaults`, then the built-in values shown here."
        ),
        epilog=(
            "runtime detection:\n"
            "  .py python, .js .mjs .cjs node (.cjs as CommonJS, .mjs as an ES module), .ts bun,\n"
            "  .mts deno, .sh bash. -e and standard input default to python, --cmd to bash.\n\n"
            "exit status:\n"
            "  the program's own exit code; 124 timeout; 137 killed at the memory limit;\n"
            "  125 isol8 or the engine failed before the program ran; 2 usage or config error;\n"
            "  130 / 143 when isol8 is interrupted (SIGINT / SIGTERM).\n\n"
            "examples:\n"
            "  isol8 run script.py --timeout 5s --memory 256m\n"
            "  TOKEN=abc isol8 run -e 'import os; print(os.environ[\"TOKEN\"])' --secret TOKEN   # prints ***\n"
            "  isol8 run --secret-file TOKEN=./token.txt script.py\n"
            "  isol8 run --json -r node -e 'console.log(process.version)'\n"
            "  isol8 run --no-stream --out result.bin gen.py   # byte for byte, also binary output\n"
            "  isol8 run --files ./src --workdir /sandbox/app main.py"
        ),
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="script to run; its extension picks the runtime")
    src = p.add_argument_group("code")
    src.add_argument("-e", "--eval", metavar="CODE", help="run CODE (default runtime: python)")
    src.add_argument("--cmd", metavar="COMMAND", help="run COMMAND with bash -c in the runtime's image (default: bash)")
    src.add_argument("-r", "--runtime", metavar="RUNTIME", help=f"runtime: {', '.join(RUNTIMES)}")
    lim = p.add_argument_group(
        "limits",
        "A SIZE is a whole number of bytes, or a number with k, m, g or t (powers of 1024):\n"
        "1.5k, 512m, 1g. Every limit has a minimum and none can be switched off: 0, -1, nan\n"
        "and inf are refused (exit 2).",
    )
    lim.add_argument(
        "--timeout",
        metavar="DURATION",
        help=f"wall-clock limit, 1ms to 24h: 500ms, 30s, 2m, or milliseconds (default: {_duration('timeoutMs')})",
    )
    lim.add_argument(
        "--memory", metavar="SIZE", help=f"memory limit, at least 6m, no swap beyond it (default: {RUN['memoryLimit']})"
    )
    lim.add_argument("--cpu", metavar="CPUS", help=f"CPU limit in cores, 0.01 to 1024 (default: {RUN['cpuLimit']:g})")
    lim.add_argument(
        "--pids-limit",
        metavar="N",
        help=f"processes the program may have, at least 1 (isol8's own come on top; default: {RUN['pidsLimit']})",
    )
    lim.add_argument(
        "--sandbox-size",
        metavar="SIZE",
        help=f"size of the /sandbox tmpfs, at least 1m (default: {RUN['sandboxSize']})",
    )
    lim.add_argument(
        "--tmp-size", metavar="SIZE", help=f"size of the /tmp tmpfs, at least 1m (default: {RUN['tmpSize']})"
    )
    lim.add_argument(
        "--shm-size",
        metavar="SIZE",
        help=f"size of /dev/shm (shared memory, noexec), at least 1m (default: {RUN['shmSize']})",
    )
    lim.add_argument(
        "--max-output",
        metavar="SIZE",
        help=f"bytes kept per stream, 1 to 1g (default: {format_size(RUN['maxOutputSize'])}); the cut never halves a "
        "valid UTF-8 character, "
        "and other bytes count as they are",
    )
    env = p.add_argument_group("environment")
    env.add_argument("--net", choices=("none", "host"), help=f"network: none or host (default: {RUN['network']})")
    env.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable (repeatable)"
    )
    env.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="environment variable whose value is masked as *** in all output (repeatable). NAME alone takes "
        "the value from isol8's own environment (exit 2 when it is unset): prefer it, or --secret-file, to "
        "NAME=VALUE, which puts the value in isol8's command line for every user's ps to see",
    )
    env.add_argument(
        "--secret-file",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="like --secret, with the value read from PATH (one trailing newline removed; repeatable)",
    )
    env.add_argument("--stdin", metavar="DATA", help="standard input for the program (else piped stdin is passed on)")
    env.add_argument(
        "--files",
        metavar="DIR",
        help="copy DIR's contents into /sandbox, keeping subfolders and modes "
        "(.git, node_modules, __pycache__, .venv skipped)",
    )
    env.add_argument("--workdir", metavar="PATH", help="working directory, inside /sandbox (default: /sandbox)")
    env.add_argument("--image", metavar="REF", help="run in this image instead of isol8:<runtime> (no discovery)")
    pkg = p.add_argument_group("packages")
    pkg.add_argument(
        "--install",
        action="append",
        default=[],
        metavar="PKG",
        help="package to provide (repeatable, comma-separated too): numpy==2.1.3, 'requests[socks]>=2.31', "
        "lodash@4, @scope/pkg@^1, npm:zod@3, jsr:@std/path. An image that has them is used as is; "
        "otherwise one is built once, cached, and found by later runs. The program still runs with --net",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of the streams: stdout, stderr, exitCode, timedOut, "
        "oomKilled, truncated, durationMs, runtime, image",
    )
    out.add_argument(
        "--no-stream",
        action="store_true",
        help="buffer the output and print it when the program ends (the same bytes as the live stream)",
    )
    out.add_argument(
        "--out",
        metavar="FILE",
        help="also write the program's stdout, byte for byte, to FILE; it is created (or emptied) before the "
        "run, and one that cannot be written is exit 2 before anything runs",
    )
    out.add_argument(
        "--raw",
        action="store_true",
        help="pass terminal control sequences through. Otherwise, when stdout or stderr is a terminal, the "
        "program's controls other than colours (ESC[...m), newline and tab are shown escaped: a control or "
        "invalid byte as \\xNN (a window title ESC]0;t BEL as \\x1b]0;t\\x07, CR as \\x0d), a C1 "
        "character as \\u00NN. Pipes and files always get the bytes unchanged",
    )
    out.add_argument("--persist", action="store_true", help="keep the container after the run and print its name")
    remote = p.add_argument_group("remote")
    remote.add_argument("--host", metavar="URL", help="run on an isol8 server (isol8 serve) instead of a local engine")
    remote.add_argument("--key", metavar="KEY", help="the server's API key (default: ISOL8_API_KEY)")
    p.set_defaults(handler="run")


def _add_cleanup(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cleanup",
        parents=[common],
        formatter_class=_Formatter,
        help="remove containers (and with --images, images) that isol8 made",
        description=(
            "Remove the containers isol8 created (found by the org.isol8.run.id label, never by\n"
            "name or image), for example after isol8 itself was killed. With --images, also\n"
            "remove isol8's images (label org.isol8.managed=true: bases, custom and cached\n"
            "images); an image a container still uses is kept. Asks first when standard input\n"
            "is a terminal."
        ),
    )
    p.add_argument("--force", action="store_true", help="do not ask")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--images", action="store_true", help="also remove isol8's images")
    p.add_argument("--keep-base", action="store_true", help="with --images: keep the isol8:<runtime> base images")
    p.set_defaults(handler="cleanup")


def _add_build(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "build",
        parents=[common],
        formatter_class=_Formatter,
        help="build a custom image with packages baked in",
        description=(
            "Build an image FROM isol8:<runtime> (built first if missing) with packages installed in\n"
            "system locations and an optional setup script run at build time (as root, with the\n"
            "network). The image is labelled org.isol8.runtime, org.isol8.dependencies (the\n"
            "normalised specs), org.isol8.deps.hash, org.isol8.resolved (installed versions) and\n"
            "org.isol8.setup, so `isol8 run --install` finds it. Building the same definition\n"
            "again does nothing; a changed one rebuilds and removes the image the tag named before."
        ),
        epilog=(
            "examples:\n"
            "  isol8 build --base python --tag my-py --install numpy --install 'pandas>=2'\n"
            "  isol8 build --base node --tag my-node --requirements package.json\n"
            "  isol8 build --base bash --tag my-bash --install jq --setup 'jq --version'"
        ),
    )
    p.add_argument("--base", required=True, choices=RUNTIMES, metavar="RUNTIME", help="runtime to build on")
    p.add_argument(
        "--tag",
        required=True,
        metavar="NAME",
        help="image NAME[:TAG] to create: lowercase components joined by '/', optionally led by host[:port]/",
    )
    p.add_argument(
        "--install", action="append", default=[], metavar="PKG", help="package (repeatable, comma-separated)"
    )
    p.add_argument(
        "--requirements", metavar="FILE", help="requirements.txt (python) or package.json (node, bun) to install"
    )
    p.add_argument("--setup", action="append", default=[], metavar="CMD|FILE", help="setup script or file (repeatable)")
    p.add_argument("--force", action="store_true", help="rebuild even when the image is up to date")
    p.set_defaults(handler="build")


def _add_images(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "images",
        aliases=["list-custom"],
        parents=[common],
        formatter_class=_Formatter,
        help="list custom images (found by label, whatever their tag)",
        description="List the custom and cached images isol8 built: every image with isol8's package labels.",
    )
    p.add_argument("-r", "--runtime", choices=RUNTIMES, metavar="RUNTIME", help="only this runtime")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler="images")


def _add_resolve(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "resolve",
        parents=[common],
        formatter_class=_Formatter,
        help="show which image `run --install` would use, and why",
        description=(
            "Show the image `isol8 run --install ...` would use: an exact match (same package set),\n"
            "else the smallest superset, else the image covering the most packages (the rest is\n"
            "installed), else the base image; versions are checked against PEP 440 specifiers\n"
            "(python) and semver ranges (npm). Ties go to the newest image."
        ),
    )
    p.add_argument("-r", "--runtime", required=True, choices=RUNTIMES, metavar="RUNTIME", help="runtime")
    p.add_argument("--install", action="append", default=[], metavar="PKG", help="package (repeatable)")
    p.add_argument("--json", action="store_true", help='print {"runtime", "image", "match", "install", "reason"}')
    p.set_defaults(handler="resolve")


def _add_serve(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        formatter_class=_Formatter,
        help="serve an HTTP API for running code (needs isol8[server])",
        description=(
            "Serve isol8 over HTTP: GET /health (no auth), POST /execute, POST /execute/stream\n"
            "(Server-Sent Events of {type: stdout|stderr|error|exit, data}), POST /cleanup, and for\n"
            "named sessions (sessionId in an execute request) GET /sessions, DELETE /session/ID,\n"
            "POST /file and GET /file; with `Authorization: Bearer KEY`. Before listening it checks\n"
            "the engine, builds missing base images and the config's prebuiltImages, and starts warm\n"
            "pools (server.poolSize containers per runtime). Requests may tighten the config's\n"
            "defaults (timeoutMs, memoryLimit, cpuLimit, pidsLimit, sandboxSize, tmpSize, shmSize,\n"
            "maxOutputSize) but never exceed them; host network and other images only when the\n"
            "config's server.allowHostNetwork / server.allowImages allow them. At most\n"
            "maxConcurrent executions run; others wait up to server.queueTimeoutMs, then get 429.\n"
            "Every process an execution starts ends with it, unless the first request of a session\n"
            "sets options.keepBackground (its processes then outlive executions, and see theirs).\n"
            "SIGINT/SIGTERM stop it; its containers are removed, its images kept."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, metavar="N", help="port (default: ISOL8_PORT, then PORT, then 3000)")
    p.add_argument("--key", metavar="KEY", help="API key clients must send (default: ISOL8_API_KEY; required)")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve without an API key (loopback addresses only)")
    p.set_defaults(handler="serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isol8",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"isol8 {__version__}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in (_add_run, _add_build, _add_images, _add_resolve, _add_setup, _add_serve, _add_config, _add_cleanup):
        add(sub, common)
    return parser
