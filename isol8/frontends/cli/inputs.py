"""Turning `isol8 run` flags into values: the code, KEY=VALUE pairs, secrets, image names."""

from __future__ import annotations

from isol8.errors import UsageError
from isol8.frontends.cli.app import App

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from collections.abc import MutableMapping


def parse_assignments(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{what}: expected KEY=VALUE, got {value!r}")
        out[key] = rest
    return out


def parse_secrets(values: list[str], files: list[str], environ: MutableMapping[str, str]) -> dict[str, str]:
    """--secret NAME (value from environ), --secret NAME=VALUE and --secret-file NAME=PATH, in that order.

    A value taken from environ is removed from it: no process isol8 starts after this (engine
    clients, the reaper's watcher, builds) inherits a secret, whatever that process does."""
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not name:
            raise UsageError("--secret: expected NAME or NAME=VALUE, with a name before the =")
        if sep:
            out[name] = rest
        elif name in environ:
            out[name] = taken[name] = environ.pop(name)
        elif name in taken:  # named twice
            out[name] = taken[name]
        else:
            raise UsageError(f"--secret {name}: the environment variable {name!r} is not set")
    for item in files:
        name, sep, path = item.partition("=")
        if not (name and sep and path):
            raise UsageError(f"--secret-file: expected NAME=PATH, got {item!r}")
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
        except OSError as exc:
            raise UsageError(f"--secret-file {name}: cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--secret-file {name}: {path} is not UTF-8 text") from None
        out[name] = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    return out


def read_code(app: App) -> tuple[bytes | None, str | None, str | None]:
    """(code, cmd, filename) from FILE, -e, --cmd or standard input."""
    args = app.args
    given = [name for name, value in (("FILE", args.file), ("-e", args.eval), ("--cmd", args.cmd)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"give only one of FILE, -e and --cmd (got {' and '.join(given)})")
    if args.cmd is not None:
        return None, args.cmd, None
    if args.eval is not None:
        return args.eval.encode(), None, None
    if args.file is not None:
        try:
            with open(args.file, "rb") as f:
                return f.read(), None, args.file
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    if app.stdin is None or not app.piped_stdin():
        raise UsageError("no code given: pass FILE, -e CODE, --cmd COMMAND, or pipe code on standard input")
    return app.stdin.buffer.read(), None, None


def check_tag(tag: str, what: str = "--tag") -> None:
    from isol8.reference import check_image_name

    try:
        check_image_name(tag)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None
