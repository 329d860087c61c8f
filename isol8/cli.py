"""The isol8 command line: one parser (stdlib only, shared with the man page) and main()."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import TextIO

from isol8 import __version__

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
        choices=("docker", "podman"),
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
    for add in (_add_setup, _add_config):
        add(sub, common)
    return parser


class _DebugFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[debug] {record.getMessage()}"


@contextlib.contextmanager
def _debug_logging(stream: TextIO, on: bool) -> object:
    logger = logging.getLogger("isol8")
    if not on:
        yield None
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_DebugFormatter())
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Parse argv, run the command, map errors to exit statuses. Never calls sys.exit."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    if not args.command:
        parser.print_help(out)
        return 0
    debug = args.debug or os.environ.get("ISOL8_DEBUG", "") not in ("", "0")
    from isol8 import commands
    from isol8.errors import EngineError, Isol8Error
    from isol8.status import ExitStatus

    app = commands.App(args=args, stdout=out, stderr=err, debug=debug)
    with _debug_logging(err, debug):
        try:
            return int(getattr(commands, f"cmd_{args.handler}")(app))
        except Isol8Error as exc:
            err.write(f"isol8: error: {exc}\n")
            if exc.hint:
                err.write(f"isol8: hint: {exc.hint}\n")
            if debug and isinstance(exc, EngineError):
                err.write(exc.details() + "\n")
            return int(exc.exit_status)
        except KeyboardInterrupt:
            err.write("isol8: interrupted\n")
            return int(ExitStatus.SIGINT)
        except Exception:
            if debug:
                raise
            import traceback

            last = traceback.format_exc().strip().splitlines()[-1]
            err.write(f"isol8: internal error: {last}\nisol8: hint: run again with --debug and please report it\n")
            return int(ExitStatus.ERROR)


def entry() -> None:
    raise SystemExit(main())
