"""`isol8 run`: the program's output to the user's streams and the --out file, and the secret flags."""

from __future__ import annotations

import json

from isol8.errors import UsageError
from isol8.frontends.cli.commands import App, build_request, prepare_packages, remote_body
from isol8.status import ExitStatus

TYPE_CHECKING = False  # typing costs ~8 ms to import: annotations only
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import BinaryIO


def parse_secrets(values: list[str], files: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """--secret NAME (value from environ), --secret NAME=VALUE and --secret-file NAME=PATH, in that order."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not name:
            raise UsageError("--secret: expected NAME or NAME=VALUE, with a name before the =")
        if sep:
            out[name] = rest
        elif name in environ:
            out[name] = environ[name]
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


def run(app: App) -> int:
    """`isol8 run`: the request from the flags, the --out file opened, then a local or a remote run."""
    from isol8.core.runner import RunRequest
    from isol8.frontends.cli.output import open_out

    request = build_request(app)
    assert isinstance(request, RunRequest)
    if app.args.install and not app.args.host:  # validate before any engine is chosen: bad specs are usage errors
        from isol8.core.provision import check_install

        check_install(request.runtime, app.args.install)
    with open_out(app.args.out) as out_file:
        if app.args.host:
            return cmd_run_remote(app, request, out_file)
        return _run_local(app, request, out_file)


def _run_local(app: App, request: object, out_file: BinaryIO | None) -> int:
    from isol8.core.runner import Execution, ImageMissing, Interrupted, RunRequest, signals_raise
    from isol8.frontends.cli.output import program_outputs

    assert isinstance(request, RunRequest)
    engine = app.engine
    asked = request
    if app.args.install:
        request = prepare_packages(app, asked, app.args.install)
        assert isinstance(request, RunRequest)

    def ensure_image(runtime: str) -> None:
        from isol8.core.images import ensure_base_image

        app.progress(f"image isol8:{runtime} is missing; building it first")
        ensure_base_image(engine, runtime, base_image=app.config.base_images.get(runtime), progress=app.progress)

    live = not (app.args.json or app.args.no_stream)
    sinks = program_outputs(app.stdout, app.stderr, raw=app.args.raw)

    def pump(request: RunRequest) -> Execution:
        execution = Execution(engine, request, ensure_image=ensure_image)
        for chunk in execution:
            if out_file is not None and chunk.stream == "stdout":
                out_file.write(chunk.data)
                out_file.flush()
            if live:
                sinks[chunk.stream].write(chunk.data)
        return execution

    restore = signals_raise()
    try:
        try:
            execution = pump(request)
        except ImageMissing:
            if not app.args.install or app.args.image:
                raise
            # a remembered image was removed since: nothing ran, so resolve afresh and run once more
            request = prepare_packages(app, asked, app.args.install, remembered=False)
            assert isinstance(request, RunRequest)
            if out_file is not None and out_file.seekable():
                out_file.seek(0)
                out_file.truncate()
            execution = pump(request)
    except Interrupted as exc:
        for sink in sinks.values():
            sink.close()
        app.stderr.write(f"isol8: {exc} received; the container was removed\n")
        return ExitStatus.SIGINT if exc.signum == 2 else ExitStatus.SIGTERM
    except BaseException:
        for sink in sinks.values():
            sink.close()  # what the terminal filter holds, before isol8's error message
        raise
    finally:
        restore()
    result = execution.result
    assert result is not None
    if app.args.json:
        app.say(json.dumps(result.to_json()))
    elif not live:
        sinks["stdout"].write(result.stdout_bytes)
        sinks["stderr"].write(result.stderr_bytes)
    for sink in sinks.values():
        sink.close()
    if result.truncated:
        app.stderr.write(f"[isol8] output truncated (limit {request.max_output} bytes per stream)\n")
    if result.timed_out:
        from isol8.core.runner import format_limit

        app.stderr.write(f"isol8: execution timed out after {format_limit(request.timeout_ms)}\n")
    elif result.oom_killed:
        from isol8.units import format_size

        memory = format_size(request.policy.memory)
        if result.exit_code == 137:
            app.stderr.write(f"isol8: killed: out of memory at the {memory} memory limit\n")
        else:
            app.stderr.write(f"isol8: a process was killed: out of memory at the {memory} limit\n")
    if request.persist:
        app.stderr.write(f"isol8: container kept: {execution.name}\n")
    app.stderr.flush()
    return result.exit_code


def cmd_run_remote(app: App, request: object, out_file: BinaryIO | None = None) -> int:
    import os

    from isol8.frontends.cli.output import program_outputs
    from isol8.frontends.remote import Isol8Remote

    client = Isol8Remote(app.args.host, app.args.key or os.environ.get("ISOL8_API_KEY"))
    body = remote_body(app, request)
    sinks = program_outputs(app.stdout, app.stderr, raw=app.args.raw)

    def put(stream: str, data: bytes, *, show: bool = True) -> None:
        if out_file is not None and stream == "stdout":
            out_file.write(data)
            out_file.flush()
        if show:
            sinks[stream].write(data)

    if app.args.json or app.args.no_stream:
        result = client.execute(body)
        put("stdout", str(result.get("stdout", "")).encode(), show=not app.args.json)
        if app.args.json:
            app.say(json.dumps(result))
        else:
            put("stderr", str(result.get("stderr", "")).encode())
        for sink in sinks.values():
            sink.close()
        return int(result.get("exitCode", ExitStatus.ENGINE_FAILURE))
    code = int(ExitStatus.ENGINE_FAILURE)
    for event in client.stream(body):
        kind, data = event.get("type"), str(event.get("data", ""))
        if kind in ("stdout", "stderr"):
            put(kind, data.encode())
        elif kind == "error":
            sinks["stderr"].close()
            app.stderr.write(f"isol8: {data}\n")
        elif kind == "exit":
            code = int(data)
    for sink in sinks.values():
        sink.close()
    return code
