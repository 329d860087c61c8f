"""main(): parse the command line, run the command's handler, map errors to exit statuses."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from isol8.frontends.cli.help import COMMANDS
from isol8.frontends.cli.parser import build_parser, command_in

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    import argparse
    from typing import TextIO

    from isol8.frontends.cli.app import App


def _debug_logging(stream: TextIO) -> Callable[[], None]:
    """Turn isol8's debug log on, to stream (see isol8/log.py); returns what turns it off."""
    import logging  # only with --debug

    logger = logging.getLogger("isol8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[debug] %(message)s"))
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)

    def off() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old)

    return off


def _parsed(parser: argparse.ArgumentParser, argv: list[str], out: TextIO, err: TextIO) -> argparse.Namespace:
    """parser.parse_args(argv), with what argparse prints (to sys's streams) going to out and err."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        return parser.parse_args(argv)
    finally:
        sys.stdout, sys.stderr = saved


# One handler per command, each imported only when its command runs: `isol8 --help` and
# `isol8 run` never load the server, the image builder or PyYAML.
def _run(app: App) -> int:
    from isol8.frontends.cli.run import cmd_run

    return cmd_run(app)


def _build(app: App) -> int:
    from isol8.frontends.cli.images import cmd_build

    return cmd_build(app)


def _images(app: App) -> int:
    from isol8.frontends.cli.images import cmd_images

    return cmd_images(app)


def _resolve(app: App) -> int:
    from isol8.frontends.cli.images import cmd_resolve

    return cmd_resolve(app)


def _setup(app: App) -> int:
    from isol8.frontends.cli.images import cmd_setup

    return cmd_setup(app)


def _serve(app: App) -> int:
    from isol8.frontends.cli.serve import cmd_serve

    return cmd_serve(app)


def _mcp(app: App) -> int:
    from isol8.frontends.cli.serve import cmd_mcp

    return cmd_mcp(app)


def _config(app: App) -> int:
    from isol8.frontends.cli.maintenance import cmd_config

    return cmd_config(app)


def _doctor(app: App) -> int:
    from isol8.frontends.cli.doctor import cmd_doctor

    return cmd_doctor(app)


def _cleanup(app: App) -> int:
    from isol8.frontends.cli.maintenance import cmd_cleanup

    return cmd_cleanup(app)


HANDLERS: dict[str, Callable[[App], int]] = {
    "run": _run,
    "build": _build,
    "images": _images,
    "resolve": _resolve,
    "setup": _setup,
    "serve": _serve,
    "mcp": _mcp,
    "config": _config,
    "cleanup": _cleanup,
    "doctor": _doctor,
}


def main(
    argv: list[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Parse argv, run the command, map errors to exit statuses. Never calls sys.exit.

    The streams default to sys's; a closed standard input is None."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if argv is None:
        argv = sys.argv[1:]
    command = command_in(argv)
    # no command named anywhere: --help, --version or a usage error, for which the commands'
    # names and summaries are enough (building every command's arguments costs ~5 ms)
    parser = build_parser(command, listing=command is None and not any(arg in COMMANDS for arg in argv))
    try:
        args = _parsed(parser, argv, out, err)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    if not args.command:
        parser.print_help(out)
        return 0
    from isol8.config.layers import env_flag

    debug = args.debug or env_flag(os.environ.get("ISOL8_DEBUG", ""))
    from isol8.frontends.cli.app import App

    return _dispatch(App(args, stdin if stdin is not None else sys.stdin, out, err, debug=debug))


def _config_debug(app: App) -> bool:
    """`debug` in the config; `isol8 doctor` reports an invalid config instead of stopping at it."""
    from isol8.errors import ConfigError

    try:
        return app.config.debug
    except ConfigError:
        if app.args.handler == "doctor":
            return False
        raise


def _dispatch(app: App) -> int:
    from isol8.errors import EngineError, Isol8Error
    from isol8.status import ExitStatus

    err = app.stderr
    try:
        app.debug = app.debug or _config_debug(app)
        off = _debug_logging(err) if app.debug else None
        try:
            return int(HANDLERS[app.args.handler](app))
        finally:
            if off is not None:
                off()
    except Isol8Error as exc:
        err.write(f"isol8: error: {exc}\n")
        if exc.hint:
            err.write(f"isol8: hint: {exc.hint}\n")
        if app.debug and isinstance(exc, EngineError):
            err.write(exc.details() + "\n")
        return int(exc.exit_status)
    except KeyboardInterrupt:
        err.write("isol8: interrupted\n")
        return int(ExitStatus.SIGINT)
    except BrokenPipeError:
        _quiet_stdout(app)
        return int(ExitStatus.SIGPIPE)
    except Exception:
        if app.debug:
            raise
        import traceback

        last = traceback.format_exc().strip().splitlines()[-1]
        err.write(f"isol8: internal error: {last}\nisol8: hint: run again with --debug and please report it\n")
        return int(ExitStatus.ERROR)


def _quiet_stdout(app: App) -> None:
    """The reader of standard output (or of standard error, on the same pipe) has gone: nothing
    more to say, and nothing at exit either (Python's flush of a dead stream would exit 120)."""
    for mine, real in ((app.stdout, sys.stdout), (app.stderr, sys.stderr)):
        if mine is real:
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), real.fileno())
            except (OSError, ValueError):
                pass


def entry() -> None:
    """The console script: main(), then an exit without the interpreter's teardown."""
    _exit(main())


def _exit(code: int) -> None:
    """Exit once the standard streams are flushed and the exit handlers (the reaper's "done") have
    run, without the interpreter freeing every module first: that costs every run ~4 ms of CPU
    and wall time, for nothing (isol8's files are closed by then). A failed flush, or a thread
    still running, takes Python's own exit instead."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    threading = sys.modules.get("threading")  # a run never loads it: it has no such threads then
    if threading and any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        raise SystemExit(code)
    atexit._run_exitfuncs()
    os._exit(code)
