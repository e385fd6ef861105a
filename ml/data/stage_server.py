"""The ingest task runs the medallion stages of its `dvc repro` in its own process.

Why: each stage of dvc.yaml is a command DVC starts as a new `python`. At millions of rows most
of such a process is importing pandas and reading back, from parquet, the table the previous
stage had just written (at 5M rows ~8 s a stage). While `ingest` waits on `dvc repro`, it
serves the stages instead: the stage command (`python -m ml.data.medallion <stage>`, unchanged)
finds `$CONVEYOR_MEDALLION_SERVER`, sends its stage, use case, params and working directory
over that unix socket and exits with what the server answers; the server runs the same
`medallion.run_stage` on the same workspace, keeping the table it wrote last so the next stage
of this `dvc repro` takes it from memory (`tables.to_frame`: the frame `read_frame` gives of
that file). DVC still decides which stages run, hashes, caches and pushes the files the stages
wrote: same outputs, same md5s, same dvc.lock.

A stage runs by itself, as before, when there is no server (`dvc repro` by hand), when the
server does not answer, or when the request is not for the workspace it serves.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from core import settings


def run(args: list[str], workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `args` (a `dvc repro` in `workspace`, with `env`) serving its stage commands: this
    thread runs them (the main thread: profiles show it at work) until the command exits."""
    folder = tempfile.mkdtemp(prefix="cvy-stages-")  # short: a unix socket path has ~100 bytes
    path = os.path.join(folder, "socket")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            try:
                server.bind(path)
                os.chmod(path, 0o600)
                server.listen(1)
            except OSError:  # no socket here: the stages run by themselves, as without a server
                return subprocess.run(args, cwd=workspace, env={**env, settings.MEDALLION_SERVER.name: ""},
                                      capture_output=True, text=True)
            server.settimeout(0.2)  # how soon the loop sees that the command has exited
            proc = subprocess.Popen(args, cwd=workspace, env={**env, settings.MEDALLION_SERVER.name: path},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            output: dict[str, str] = {}
            waiter = threading.Thread(target=lambda: output.update(zip(("out", "err"), proc.communicate())), daemon=True)
            waiter.start()
            kept: dict = {}  # what the last stage wrote (medallion.run_stage), for the next
            while waiter.is_alive():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                conn.settimeout(None)
                _answer(conn, workspace.resolve(), kept)
            waiter.join()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return subprocess.CompletedProcess(args, proc.returncode, output.get("out", ""), output.get("err", ""))


def _answer(conn: socket.socket, workspace: Path, kept: dict) -> None:
    with conn, conn.makefile("rwb") as stream:
        try:
            reply = _run(json.loads(stream.readline()), workspace, kept)
        except Exception:  # a bug: the stage fails with its traceback, the next one may still run
            kept.clear()
            reply = {"code": 1, "error": traceback.format_exc()}
        try:
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()
        except OSError:  # the stage command is gone (dvc repro interrupted): nobody to tell
            pass


def _run(request: dict, workspace: Path, kept: dict) -> dict:
    from core.errors import ConveyorError
    from ml.data import medallion
    from ml.usecase import load_use_case

    if Path(request["cwd"]).resolve() != workspace:
        return {"code": None}  # not the workspace served: the stage runs by itself
    try:
        uc = load_use_case(request["use_case"])
        medallion.run_stage(request["stage"], uc, Path(request["params"]), workspace, kept)
    except ConveyorError as exc:
        kept.clear()
        error = exc if isinstance(exc, medallion.StageFailed) else medallion.StageFailed(f"{request['stage']} stage: {exc}")
        return {"code": error.exit_code, "error": f"error: {error}", "details": list(error.details())}
    return {"code": 0}


def hand_over_command(argv: list[str]) -> None:
    """A stage command's first step (`python -m ml.data.medallion <stage> ...`, before it imports
    pandas and the use case): exit with the stage's code when the ingest task's process ran it;
    return when it runs here (no server, or arguments `medallion` itself must judge)."""
    if not argv or argv[0] not in ("bronze", "silver", "gold"):
        return
    options, rest = {"--use-case": None, "--params": "params.yaml"}, iter(argv[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        value = value if eq else next(rest, None)
        if name not in options or value is None:  # medallion's own parser says what is wrong
            return
        options[name] = value
    code = hand_over(argv[0], options["--use-case"], options["--params"])
    if code is not None:
        sys.exit(code)


def hand_over(stage: str, use_case: str | None, params: str) -> int | None:
    """In a stage command: have the ingest task's process run `stage` and return its exit code
    (its error printed as the stage would print it), or None when there is no server to take it."""
    path = settings.MEDALLION_SERVER.get()
    if not path:
        return None
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
    except OSError:
        return None
    request = {"stage": stage, "use_case": use_case, "params": params, "cwd": os.getcwd()}
    with conn, conn.makefile("rwb") as stream:
        stream.write(json.dumps(request).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    if not line:  # the server went away mid-stage (the ingest task was stopped)
        print(f"error: {stage} stage: the ingest task's process stopped while running it", file=sys.stderr)
        return 1
    reply = json.loads(line)
    if reply["code"] is None:
        return None
    for text in (*reply.get("details", []), reply.get("error")):
        if text:
            print(text, file=sys.stderr)
    return int(reply["code"])
