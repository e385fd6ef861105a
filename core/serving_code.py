"""Which code an environment's endpoint runs: the contract between `bundle deploy` and the launcher.

`pulumi up` owns the endpoint *process* (`ml.serving.launcher`, supervised, stable); a bundle
deploy owns the *code* it runs. They meet in the env's bundle storage (`storage.bundle`, a
directory or an S3 prefix, so both platforms work the same):

    serving/code.json                  the code the endpoint should run (`CodeRequest`), written by deploy
    serving/launchers/<instance>.json  what each launcher runs and its last rollout (`LauncherStatus`)

A deploy writes the request, then waits (`wait_for_rollout`) until every live launcher
serves that artifact, or one reports why it could not start it: then the old code is
still serving and the deploy fails with that reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from pydantic import BaseModel

from core.errors import ConveyorError
from core.storage import Blobs

REQUEST = "serving/code.json"
LAUNCHERS = "serving/launchers"
HEARTBEAT_S = 2.0  # a launcher rewrites its status at least this often
STALE_S = 30.0  # a status older than this belongs to a launcher that is gone


class ServingCodeError(ConveyorError):
    """The endpoint could not start the deployed code (the old code keeps serving)."""


class CodeRequest(BaseModel):
    """The code an env's endpoint should run: a deployment's code wheel."""

    artifact: str  # content hash of the code wheel
    wheel: str  # key of the wheel under storage.bundle
    deployment: str  # <bundle>.<target>[.<user>]
    git_sha: str = "unknown"
    requested_at: float = 0.0  # a new request of the same artifact (a retry) has a new time
    requested_by: str = ""

    @property
    def short(self) -> str:
        return self.artifact[:12]


class Failure(BaseModel):
    artifact: str
    requested_at: float
    reason: str
    at: float


class LauncherStatus(BaseModel):
    instance: str
    host: str
    pid: int
    heartbeat: float
    state: str  # no_code | starting | serving | restarting
    serving: CodeRequest | None = None
    bento: str | None = None
    since: float | None = None
    backend_pid: int | None = None
    source: str | None = None  # where the running code was unpacked (the Bento's sources)
    rolling: CodeRequest | None = None  # a rollout in progress
    failed: Failure | None = None  # the last rollout that did not start

    def alive(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.heartbeat < STALE_S


def request_code(blobs: Blobs, request: CodeRequest) -> None:
    blobs.write_text(REQUEST, request.model_dump_json(indent=2))


def read_request(blobs: Blobs) -> CodeRequest | None:
    text = blobs.read_text(REQUEST)
    return CodeRequest.model_validate_json(text) if text else None


def write_status(blobs: Blobs, status: LauncherStatus) -> None:
    blobs.write_text(f"{LAUNCHERS}/{status.instance}.json", status.model_dump_json(indent=2))


def launchers(blobs: Blobs) -> list[LauncherStatus]:
    """Every launcher that reported recently (others are gone: a stopped env, an old pod)."""
    out = []
    for name in blobs.list(LAUNCHERS):
        text = blobs.read_text(f"{LAUNCHERS}/{name}") if name.endswith(".json") else None
        try:
            status = LauncherStatus.model_validate(json.loads(text)) if text else None
        except ValueError:
            continue
        if status is not None and status.alive():
            out.append(status)
    return out


def all_serve(live: list[LauncherStatus], artifact: str) -> bool:
    """Every launcher in `live` serves code `artifact`."""
    return all(s.serving is not None and s.serving.artifact == artifact for s in live)


def wait_for_rollout(blobs: Blobs, request: CodeRequest, *, timeout_s: float = 600.0,
                     echo: Callable[[str], None] = print, poll_s: float = 1.0) -> list[LauncherStatus]:
    """Wait until every live launcher serves `request`'s artifact; returns their statuses
    (empty when no launcher runs: the endpoint starts on this code when it comes up).
    Raises `ServingCodeError` with the launcher's reason when the code did not start."""
    deadline = time.monotonic() + timeout_s
    announced = False
    while True:
        live = launchers(blobs)
        if not live:
            return []
        for status in live:
            f = status.failed
            if f is not None and f.artifact == request.artifact and f.requested_at >= request.requested_at:
                raise ServingCodeError(f"the endpoint could not start code {request.short} (the previous code keeps "
                                       f"serving): {f.reason}")
        if all_serve(live, request.artifact):
            return live
        if not announced:
            echo(f"endpoint: starting code {request.short} next to the running one")
            announced = True
        if time.monotonic() > deadline:
            raise ServingCodeError(f"the endpoint did not switch to code {request.short} within {timeout_s:.0f}s "
                                   f"(the previous code keeps serving)")
        time.sleep(poll_s)
