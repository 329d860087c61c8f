"""The flags of `isol8 run`, in the groups its help shows."""

from __future__ import annotations

import argparse

from isol8.defaults import INSTALL_STRATEGIES, RUN
from isol8.units import format_duration, format_size

RUNTIMES = ("python", "node", "bun", "deno", "bash")


def add_run(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    formatter: type[argparse.HelpFormatter],
    summary: str,
) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        formatter_class=formatter,
        help=summary,
        description=(
            "Run code from FILE, -e CODE, --cmd COMMAND or standard input in a fresh container:\n"
            "read-only root, /sandbox (the home and working directory) and /tmp as size-limited\n"
            "tmpfs, a non-root user, no capabilities, a seccomp profile that also denies\n"
            "unshare/setns/mount/ptrace/bpf/io_uring, no network unless --net filtered (only the\n"
            "hosts of --allow, through isol8's egress proxy) or --net host, and limits\n"
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
            "  isol8 run --allow api.example.com --allow '*.example.org' script.py\n"
            "  isol8 run --no-stream --out result.bin gen.py   # byte for byte, also binary output\n"
            "  isol8 run --files ./src --workdir /sandbox/app main.py"
        ),
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="script to run; its extension picks the runtime")
    for add in (_code, _limits, _environment, _packages, _output, _output_files, _remote):
        add(p)
    p.set_defaults(handler="run")


def _code(p: argparse.ArgumentParser) -> None:
    """FILE, -e, --cmd and the runtime."""
    src = p.add_argument_group("code")
    src.add_argument("-e", "--eval", metavar="CODE", help="run CODE (default runtime: python)")
    src.add_argument("--cmd", metavar="COMMAND", help="run COMMAND with bash -c in the runtime's image (default: bash)")
    src.add_argument("-r", "--runtime", metavar="RUNTIME", help=f"runtime: {', '.join(RUNTIMES)}")


def _limits(p: argparse.ArgumentParser) -> None:
    """Time, memory, CPU, processes, tmpfs sizes and output, with the built-in defaults."""
    lim = p.add_argument_group(
        "limits",
        "A SIZE is a whole number of bytes, or a number with k, m, g or t (powers of 1024):\n"
        "1.5k, 512m, 1g. Every limit has a minimum and none can be switched off: 0, -1, nan\n"
        "and inf are refused (exit 2).",
    )
    lim.add_argument(
        "--timeout",
        metavar="DURATION",
        help="wall-clock limit, 1ms to 24h: 500ms, 30s, 2m, or milliseconds "
        f"(default: {format_duration(RUN['timeoutMs'])})",
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


def _environment(p: argparse.ArgumentParser) -> None:
    """Network, environment, secrets, stdin, files, working directory and image."""
    env = p.add_argument_group("environment")
    env.add_argument(
        "--net",
        choices=("none", "host", "filtered"),
        help=f"network: none, filtered or host (default: {RUN['network']})",
    )
    env.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="HOST",
        help="a host the code may reach, over HTTP or HTTPS through the proxy: api.example.com, "
        "*.example.com (the names below it) or an anchored regex ^...$, on ports 80 and 443 or the one a "
        ":PORT suffix names (repeatable; implies --net filtered; replaces the config's network.whitelist). "
        "Names resolving to private, loopback or link-local addresses are refused unless "
        "network.allowPrivate lists them",
    )
    env.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="HOST",
        help="a host the proxy refuses even when allowed, on every port (repeatable; implies --net filtered; "
        "adds to the config's network.blacklist)",
    )
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
    _sandbox_contents(env)


def _sandbox_contents(env: argparse._ArgumentGroup) -> None:
    """--files, --setup, --workdir and --image: what the program finds in the sandbox."""
    env.add_argument(
        "--files",
        metavar="DIR",
        help="copy DIR's contents into /sandbox, keeping subfolders and modes "
        "(.git, node_modules, __pycache__, .venv skipped)",
    )
    env.add_argument(
        "--setup",
        metavar="SCRIPT",
        action="append",
        default=[],
        help="run the bash SCRIPT in /sandbox before the program, as the sandbox user and within the time limit; "
        "if it fails, the program does not run and isol8 exits with its status (repeatable: joined, one per line)",
    )
    env.add_argument("--workdir", metavar="PATH", help="working directory, inside /sandbox (default: /sandbox)")
    env.add_argument("--image", metavar="REF", help="run in this image instead of isol8:<runtime> (no discovery)")


def _packages(p: argparse.ArgumentParser) -> None:
    """--install."""
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
    pkg.add_argument(
        "--install-strategy",
        choices=INSTALL_STRATEGIES,
        help="image (the default, or the config's packages.strategy): the cached image above; runtime: "
        "installed into this run's /sandbox by an installer container on the engine's default network, "
        "every run, with no image built (the program's network is still --net's)",
    )


def _output(p: argparse.ArgumentParser) -> None:
    """How the program's output reaches the user."""
    out = p.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of the streams: stdout, stderr, exitCode, timedOut, "
        "oomKilled, truncated, durationMs, runtime, image, containerId, executionId, timestamp, usage "
        "(cpuTimeMs, memoryPeakBytes, pidsPeak), and files and missingFiles with --output-path",
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
    out.add_argument(
        "--dry-run",
        action="store_true",
        help="print the engine command the run would be (one shell command) and run nothing: no engine call, no "
        "container (the program, its environment and files go on its stdin, never in the command; with "
        "--json: {commands: [argv...]})",
    )


def _output_files(p: argparse.ArgumentParser) -> None:
    """Files the program made, copied out before its container goes."""
    files = p.add_argument_group("output files")
    files.add_argument(
        "--output-path",
        metavar="PATH",
        action="append",
        default=[],
        help="once the program ends, copy out the regular files at PATH, under /sandbox (relative to it if "
        "not absolute); PATH may be a pattern, whose * also matches / (find -path). Symlinks are never "
        "followed. A PATH that matches no file is reported, not an error; a file over the config's "
        "outputFiles caps (16m per file, 64m per run) is an error naming it (exit 1). Repeatable",
    )
    files.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write the --output-path files under DIR at their paths relative to /sandbox (with --json they "
        "are also in its files object, as base64)",
    )


def _remote(p: argparse.ArgumentParser) -> None:
    """Running on an isol8 server instead."""
    remote = p.add_argument_group("remote")
    remote.add_argument("--host", metavar="URL", help="run on an isol8 server (isol8 serve) instead of a local engine")
    remote.add_argument("--key", metavar="KEY", help="the server's API key (default: ISOL8_API_KEY)")
