"""The one parser of the isol8 command line (stdlib only): main(), --help and the man page share it."""

from __future__ import annotations

import argparse

from isol8 import __version__
from isol8.backends import ENGINES, KINDS
from isol8.frontends.cli.help import ALIASES, DESCRIPTION, ENDPOINT_OPTIONS, EPILOG, SERVE_HELP, SUMMARIES, Formatter
from isol8.frontends.cli.run_flags import RUNTIMES, add_run

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    _Adder = Callable[[argparse._SubParsersAction[argparse.ArgumentParser], argparse.ArgumentParser], None]


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--engine, the endpoint options, --config/--no-user-config/--debug, accepted before and after the command name.

    They go into the parser's own "options" group, the section --help lists them in: added to the
    parser itself, argparse makes a help formatter for each one to check its metavar against its
    nargs (0.8M instructions for the two sets on every call); a group's arguments skip that check."""
    options = parser._optionals

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    options.add_argument(
        "--engine",
        choices=ENGINES,
        default=default(None),
        help="container engine to use (default: ISOL8_ENGINE, the config, then auto-detect)",
    )
    options.add_argument(
        "--backend",
        choices=KINDS,
        default=default(None),
        help="what runs the sandboxes: an engine, or Pods through kubectl "
        "(default: ISOL8_BACKEND, the config's backend.kind, then engine)",
    )
    for option, metavar, says in ENDPOINT_OPTIONS:
        options.add_argument(option, metavar=metavar, default=default(None), help=says)
    options.add_argument(
        "--config",
        metavar="FILE",
        default=default(None),
        help="config file over the user and project files (also ISOL8_CONFIG)",
    )
    options.add_argument(
        "--no-user-config",
        action="store_true",
        default=default(False),
        help="ignore ~/.isol8/config.*: with --config, a hermetic run for CI",
    )
    options.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="print every engine command line isol8 runs, and tracebacks (also ISOL8_DEBUG=1)",
    )


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    description: str,
    aliases: Sequence[str] = (),
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """A command's parser, with the global options and the summary --help lists for it."""
    return sub.add_parser(
        name,
        parents=[common],
        formatter_class=Formatter,
        help=SUMMARIES[name],
        description=description,
        aliases=list(aliases),
        epilog=epilog,
    )


def _add_setup(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "setup",
        (
            "Build the base image isol8:<runtime> of each runtime, and isol8:proxy (the egress\n"
            "proxy of --net filtered: squid from the Debian base of bash), that is missing or\n"
            "whose Dockerfile, build context or base image changed; up-to-date images are skipped.\n"
            "When an existing image is out of date but its base image is not local and its\n"
            "registry is out of reach (offline), it is kept with a one-line warning (exit 0;\n"
            "--strict, or the base named with --base-image, makes that a failure). Then build\n"
            "the config file's prebuiltImages. Progress goes to stderr."
        ),
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the images are up to date (fails when a base image cannot be had)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when a runtime image is out of date and its base image cannot be had "
        "(default: warn in one line and keep the existing image)",
    )
    p.add_argument(
        "-r",
        "--runtime",
        action="append",
        choices=(*RUNTIMES, "proxy"),
        metavar="RUNTIME",
        help=f"only this runtime, or proxy (repeatable; default: all of {', '.join(RUNTIMES)} and proxy)",
    )
    p.add_argument(
        "--base-image",
        action="append",
        default=[],
        metavar="RUNTIME=REF",
        help="build isol8:RUNTIME FROM this image instead of the Dockerfile's default "
        "(repeatable; overrides baseImages in the config)",
    )
    p.add_argument(
        "--push",
        action="store_true",
        help="then push each image to registry.repository as REPOSITORY/isol8:RUNTIME (and "
        "REPOSITORY/isol8:proxy), where --backend kubernetes runs from",
    )
    p.set_defaults(handler="setup")


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "config",
        (
            "Print the configuration in force: the built-in defaults with the user file, the\n"
            "project file, --config/ISOL8_CONFIG and ISOL8_* variables over them, in that order."
        ),
    )
    p.add_argument(
        "--show-origin",
        action="store_true",
        help="one line per key: the file or variable that set it (or built-in), the key, its value",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"source": FILE|null, "sources": [FILE...], "config": {...}, "origins": {KEY: ORIGIN}} as JSON',
    )
    p.set_defaults(handler="config")


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "doctor",
        (
            "Check, one line each with a hint when something fails: the config files, the CA\n"
            "bundle, the engine (reachable, rootless or not, cgroup controllers), each runtime\n"
            "image and its base image, a real sandbox (seccomp profile in force, user\n"
            "namespaces blocked), disk space, and with --network the package registries.\n"
            "Exit status 0 when everything `isol8 run` needs works, 1 otherwise."
        ),
    )
    p.add_argument(
        "--network",
        action="store_true",
        help="also check that the package index and the npm registry answer from a container",
    )
    p.add_argument(
        "--json", action="store_true", help='print {"ok": BOOL, "checks": [{name, ok, detail, hint, required}]}'
    )
    p.set_defaults(handler="doctor")


def _duration(value: str) -> int:
    from isol8 import units

    try:
        return units.duration_ms(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_cleanup(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "cleanup",
        (
            "Remove the containers isol8 created (found by the org.isol8.run.id label, never by\n"
            "name or image) whose isol8 process has ended, for example after isol8 itself was\n"
            "killed. A running isol8 serve keeps its warm pool and sessions, a run in progress\n"
            "its container, and another host's isol8 its own (a host is a machine, or a\n"
            "container with its own pids, sharing one engine): --all removes those too, and\n"
            "--stale-after those of any owner created longer ago than a duration. With\n"
            "--images, also remove isol8's images (label org.isol8.managed=true: bases, custom\n"
            "and cached images); an image a container still uses is kept. Asks first when\n"
            "standard input is a terminal."
        ),
    )
    p.add_argument("--force", action="store_true", help="do not ask")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument(
        "--all", action="store_true", help="also remove the containers of isol8 processes still running, on any host"
    )
    p.add_argument(
        "--stale-after",
        metavar="DURATION",
        type=_duration,
        help="also remove containers of any owner, on any host, created longer ago than DURATION (30m, 12h)",
    )
    p.add_argument("--images", action="store_true", help="also remove isol8's images")
    p.add_argument("--keep-base", action="store_true", help="with --images: keep the isol8:<runtime> base images")
    p.set_defaults(handler="cleanup")


def _add_build(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "build",
        (
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
            "  isol8 build --base bash --tag my-bash --install jq --setup 'jq --version'\n"
            "  isol8 build --base python --tag my-py --install numpy --push   # to registry.repository"
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
    push = "then push it to REF (HOST[:PORT]/NAME[:TAG]), or to registry.repository, where run --install finds it"
    p.add_argument("--push", nargs="?", const="", metavar="REF", help=push)
    p.set_defaults(handler="build")


def _add_images(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "images",
        "List the custom and cached images isol8 built: every image with isol8's package labels.",
        aliases=ALIASES["images"],
    )
    p.add_argument("-r", "--runtime", choices=RUNTIMES, metavar="RUNTIME", help="only this runtime")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler="images")


def _add_resolve(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "resolve",
        (
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


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "serve", **SERVE_HELP)
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, metavar="N", help="port (default: ISOL8_PORT, then PORT, then 3000)")
    p.add_argument("--key", metavar="KEY", help="API key clients must send (default: ISOL8_API_KEY; required)")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve without an API key (loopback addresses only)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when a runtime image is out of date and its base image cannot be had "
        "(default: warn in one line and keep the existing image)",
    )
    p.set_defaults(handler="serve")


def _add_mcp(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        common,
        "mcp",
        (
            "Serve the Model Context Protocol on stdin/stdout for an agent that starts isol8 mcp:\n"
            "tools execute, session_create, session_execute, session_put_file, session_get_file and\n"
            "session_delete, under the same policy as isol8 serve (the config's defaults and server\n"
            "settings as ceilings) with its warm pools and sessions. It prepares images as serve\n"
            "does; it ends when the client closes stdin, or on SIGINT/SIGTERM, removing its containers."
        ),
    )
    p.add_argument("--strict", action="store_true", help="as for serve: fail when a runtime image cannot be updated")
    p.set_defaults(handler="mcp")


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    add_run(sub, common, Formatter, SUMMARIES["run"])


# Every command name (aliases too) and what adds its parser, in the order --help lists them.
_COMMANDS: dict[str, _Adder] = {
    "run": _add_run,
    "build": _add_build,
    "images": _add_images,
    "list-custom": _add_images,
    "resolve": _add_resolve,
    "setup": _add_setup,
    "serve": _add_serve,
    "mcp": _add_mcp,
    "config": _add_config,
    "doctor": _add_doctor,
    "cleanup": _add_cleanup,
}


_VALUED = ("--engine", "--backend", "--config", *(option for option, _, _ in ENDPOINT_OPTIONS))


def command_in(argv: Sequence[str]) -> str | None:
    """The command argv names after the global options, when that is certain without parsing; else None.

    Only the exact global options are skipped (--engine X, --engine=X, --config FILE, --config=FILE,
    the endpoint options likewise, --no-user-config, --debug), and only values that cannot be
    taken for options. Anything else (-h, --version, an
    abbreviation, --, an unknown command) is None: the full parser then answers, listing every
    command in its help and its errors."""
    rest = iter(argv)
    for arg in rest:
        if arg in _COMMANDS:
            return arg
        if arg in _VALUED:
            if next(rest, "-").startswith("-"):
                return None
        elif arg not in ("--debug", "--no-user-config") and not arg.startswith(tuple(f"{v}=" for v in _VALUED)):
            return None
    return None


def build_parser(command: str | None = None, *, listing: bool = False) -> argparse.ArgumentParser:
    """The isol8 parser; with a command from command_in(), one that knows only that command; with
    listing, one whose commands are only their names and summaries.

    For an argv naming that command both parse alike, as their top levels are the same; main() so
    skips building the other commands' arguments on every call. A listing parser answers an argv
    that names no command at all (--help, --version, a usage error) as the whole parser does."""
    parser = argparse.ArgumentParser(
        prog="isol8",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"isol8 {__version__}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False, formatter_class=Formatter)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    if listing:
        for name, summary in SUMMARIES.items():
            sub.add_parser(name, aliases=ALIASES.get(name, []), help=summary, add_help=False)
        return parser
    adders = [_COMMANDS[command]] if command else list(dict.fromkeys(_COMMANDS.values()))
    for add in adders:
        add(sub, common)
    return parser
