"""main(): parse the command line, run the command's handler, map errors to exit statuses."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from isol8.frontends.cli.parser import build_parser

TYPE_CHECKING = False  # typing costs ~8 ms to import: annotations only
if TYPE_CHECKING:
    from typing import TextIO


@contextlib.contextmanager
def _debug_logging(stream: TextIO, on: bool) -> Iterator[None]:
    if not on:
        yield None
        return
    import logging  # only with --debug: see isol8/log.py

    logger = logging.getLogger("isol8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[debug] %(message)s"))
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
    from isol8.errors import EngineError, Isol8Error
    from isol8.frontends.cli import commands
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
