"""`isol8 run`: the flags as a RunRequest, run here or on a server, the program's output to the user's streams."""

from __future__ import annotations

import os

from isol8 import runtimes
from isol8.core.plan import plan_run
from isol8.core.runner import Execution, RunRequest, signals_raise, stdin_chunks
from isol8.errors import ImageMissing, Interrupted, LimitRefused, OutputFilesError, UsageError
from isol8.frontends.cli.app import App
from isol8.frontends.cli.inputs import parse_assignments, parse_secrets, read_code
from isol8.frontends.cli.output import ProgramOutput, open_out, program_outputs
from isol8.status import ExitStatus

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import BinaryIO

# run's limit flags (their argparse dest) -> the config's key for that limit
LIMIT_FLAGS = {
    "timeout": "timeoutMs",
    "memory": "memoryLimit",
    "cpu": "cpuLimit",
    "pids_limit": "pidsLimit",
    "sandbox_size": "sandboxSize",
    "tmp_size": "tmpSize",
    "shm_size": "shmSize",
    "max_output": "maxOutputSize",
    "net": "network",
}


def cmd_run(app: App) -> int:
    """The request from the flags, the --out file opened, then a local or a remote run."""
    if app.args.output_path and not (app.args.out_dir or app.args.json):
        raise UsageError("--output-path needs --out-dir DIR (or --json) to put the files somewhere")
    if app.args.out_dir and not app.args.output_path:
        raise UsageError("--out-dir needs --output-path: which files to copy out")
    request = request_from_args(app)
    if app.args.install_strategy and not app.args.install:
        raise UsageError("--install-strategy needs --install: which packages to install")
    if app.args.install_strategy and app.args.host:
        raise UsageError("--install-strategy is the server's choice (its packages.strategy), not --host's")
    if app.args.install and not app.args.host:  # validate before any engine is chosen: bad specs are usage errors
        from isol8.core.provision import check_install

        check_install(request.runtime, app.args.install)
    if app.args.dry_run:
        return _dry_run(app, request)
    out_file = open_out(app.args.out)
    sinks = program_outputs(app.stdout, app.stderr, raw=app.args.raw)
    try:
        if app.args.host:
            return _run_remote(app, request, out_file, sinks)
        return _run_local(app, request, out_file, sinks)
    finally:
        for sink in sinks.values():
            sink.close()  # what the terminal filter holds, before isol8's own messages
        if out_file is not None:
            out_file.close()


def asked_limits(app: App) -> dict[str, object]:
    """The limits given as flags, by config key: the rest are the config's."""
    return {key: getattr(app.args, dest) for dest, key in LIMIT_FLAGS.items() if getattr(app.args, dest) is not None}


def request_from_args(app: App) -> RunRequest:
    args = app.args
    code, cmd, filename = read_code(app)
    if args.runtime:
        runtime = runtimes.get(args.runtime)
    elif filename:
        runtime = runtimes.detect(filename)
    else:
        runtime = runtimes.get("bash" if cmd is not None else "python")
    files_dir = None
    if args.files is not None:
        from pathlib import Path

        files_dir = Path(args.files)
        if not files_dir.is_dir():
            raise UsageError(f"--files: not a directory: {args.files}")
    limits = asked_limits(app)
    if (args.allow or args.deny) and args.net is None:
        limits["network"] = "filtered"
    try:
        return plan_run(
            app.config,
            limits,
            allow=args.allow or None,
            deny=args.deny,
            runtime=runtime,
            code=code,
            cmd=cmd,
            filename=filename,
            files_dir=files_dir,
            stdin=_program_stdin(app, uses_stdin_for_code=code is not None and filename is None and args.eval is None),
            env=parse_assignments(args.env, "--env"),
            secrets=parse_secrets(args.secret, args.secret_file, os.environ),
            workdir=args.workdir or "/sandbox",
            image=args.image,
            persist=args.persist,
            setup="\n".join(args.setup) or None,
            output_paths=tuple(args.output_path),
        )
    except LimitRefused as exc:
        flag = next(dest for dest, key in LIMIT_FLAGS.items() if key == exc.key)
        raise UsageError(f"--{flag.replace('_', '-')}: {exc.reason}") from None


def _program_stdin(app: App, *, uses_stdin_for_code: bool) -> Iterable[bytes]:
    """--stdin, else isol8's own piped stdin unless the code came from it."""
    if app.args.stdin is not None:
        return [app.args.stdin.encode()]
    if app.stdin is not None and app.piped_stdin() and not uses_stdin_for_code:
        return stdin_chunks(app.stdin.buffer)
    return []


def _dry_run(app: App, request: RunRequest) -> int:
    """--dry-run: what the run would execute, running nothing (no engine call, no container)."""
    if app.args.host or app.args.install or app.args.out or app.args.output_path:
        raise UsageError("--dry-run shows a plain local run: not with --host, --install, --out or --output-path")

    planned = Execution(app.backend, request).plan()
    if app.args.json:
        import json

        documents = [document for _, document in planned if document is not None]
        app.say(json.dumps({"commands": [argv for argv, _ in planned], "manifests": documents}))
    else:
        app.say(planned_script(planned))
        app.progress("the program's stdin: isol8's payload (the program, its environment and its files)")
    return ExitStatus.OK


def planned_script(planned: Sequence[tuple[Sequence[str], object | None]]) -> str:
    """The planned commands as a shell script: a document read on stdin follows its command as a
    here-document (JSON, which kubectl reads), quoted so the shell expands nothing in it."""
    import json
    import shlex

    lines = []
    for argv, document in planned:
        if document is None:
            lines.append(shlex.join(argv))
        else:
            lines += [f"{shlex.join(argv)} <<'ISOL8'", json.dumps(document, indent=2), "ISOL8"]
    return "\n".join(lines)


def _run_local(app: App, request: RunRequest, out_file: BinaryIO | None, sinks: dict[str, ProgramOutput]) -> int:
    asked = request
    live = not (app.args.json or app.args.no_stream)
    restore = signals_raise()  # from here SIGINT and SIGTERM remove what isol8 started (an installer too)
    try:
        if app.args.install:
            from isol8.frontends.cli.packages import prepare_packages

            request = prepare_packages(app, asked, app.args.install)
        try:
            execution = _pump(app, request, out_file, sinks, live=live)
        except ImageMissing:
            if not app.args.install or app.args.image:
                raise
            # a remembered image was removed since: nothing ran, so resolve afresh and run once more
            from isol8.frontends.cli.packages import prepare_packages

            request = prepare_packages(app, asked, app.args.install, remembered=False)
            if out_file is not None and out_file.seekable():
                out_file.seek(0)
                out_file.truncate()
            execution = _pump(app, request, out_file, sinks, live=live)
    except Interrupted as exc:
        for sink in sinks.values():
            sink.close()
        app.stderr.write(f"isol8: {exc} received; what isol8 had started was removed\n")
        return ExitStatus.SIGINT if exc.signum == 2 else ExitStatus.SIGTERM
    finally:
        restore()
    return _report(app, request, execution, sinks, live=live)


def _pump(
    app: App, request: RunRequest, out_file: BinaryIO | None, sinks: dict[str, ProgramOutput], *, live: bool
) -> Execution:
    def ensure_image(runtime: runtimes.Runtime) -> None:
        from isol8.core.base_images import ensure_base_image

        app.progress(f"image {runtime.image} is missing; building it first")
        ensure_base_image(
            app.backend, runtime.name, base_image=app.config.base_images.get(runtime.name), progress=app.progress
        )

    execution = Execution(app.backend, request, ensure_image=ensure_image if app.backend.builds_images else None)
    try:
        for chunk in execution:
            if out_file is not None and chunk.stream == "stdout":
                out_file.write(chunk.data)
                out_file.flush()
            if live:
                sinks[chunk.stream].write(chunk.data)
    except OutputFilesError:  # the run ended: its output is reported, then this error (execution.files_error)
        pass
    return execution


def _report(app: App, request: RunRequest, execution: Execution, sinks: dict[str, ProgramOutput], *, live: bool) -> int:
    """The result to the user's streams (unless streamed live), then isol8's own notes; the exit status."""
    from isol8 import units

    result = execution.result
    assert result is not None  # an Execution iterated to its end has one
    if app.args.json:
        import json  # only for --json: a run without a config file never loads it

        from isol8.frontends.wire import result_json

        app.say(json.dumps(result_json(result)))
    elif not live:
        sinks["stdout"].write(result.stdout_bytes)
        sinks["stderr"].write(result.stderr_bytes)
    for sink in sinks.values():
        sink.close()
    if result.truncated:
        app.stderr.write(f"[isol8] output truncated (limit {request.max_output} bytes per stream)\n")
    if result.timed_out:
        app.stderr.write(f"isol8: execution timed out after {units.format_duration(request.timeout_ms)}\n")
    elif result.oom_killed:
        memory = units.format_size(request.policy.memory)
        if result.exit_code == 137:
            app.stderr.write(f"isol8: killed: out of memory at the {memory} memory limit\n")
        else:
            app.stderr.write(f"isol8: a process was killed: out of memory at the {memory} limit\n")
    if request.persist:
        app.stderr.write(f"isol8: container kept: {execution.name}\n")
    for pattern in result.missing_files:
        app.stderr.write(f"isol8: no file matches output path {pattern}\n")
    if app.args.out_dir and result.files:
        from isol8.frontends.cli.output import write_output_files

        write_output_files(app.args.out_dir, dict(result.files))
    app.stderr.flush()
    if execution.files_error is not None:
        raise execution.files_error
    return result.exit_code


def _run_remote(app: App, request: RunRequest, out_file: BinaryIO | None, sinks: dict[str, ProgramOutput]) -> int:
    from isol8.frontends.remote import Isol8Remote
    from isol8.frontends.wire import request_body

    client = Isol8Remote(app.args.host, app.args.key or os.environ.get("ISOL8_API_KEY"))
    body = request_body(request, limits=asked_limits(app), install=app.args.install)

    def put(stream: str, data: bytes, *, show: bool = True) -> None:
        if out_file is not None and stream == "stdout":
            out_file.write(data)
            out_file.flush()
        if show:
            sinks[stream].write(data)

    if app.args.json or app.args.no_stream or request.output_paths:  # files come only with a whole result
        result = client.execute(body)
        put("stdout", str(result.get("stdout", "")).encode(), show=not app.args.json)
        _remote_files(app, result)
        if app.args.json:
            import json

            app.say(json.dumps(result))
        else:
            put("stderr", str(result.get("stderr", "")).encode())
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
    return code


def _remote_files(app: App, result: dict[str, object]) -> None:
    import base64

    files = result.get("files")
    if not app.args.out_dir or not isinstance(files, dict):
        return
    from isol8.frontends.cli.output import write_output_files

    write_output_files(app.args.out_dir, {str(k): base64.b64decode(str(v)) for k, v in files.items()})
