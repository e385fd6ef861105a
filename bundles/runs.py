"""A run's record in env storage: `runs/<run_id>/run.json` (+ logs/, values/), and reading them back.

The runner writes the record on every task change, so `conveyor bundle runs` and a
scheduler in another terminal see the same history while the run is going.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bundles.envstore import DeploymentStore, now_iso, pid_alive, read_json


def new_run_id() -> str:
    """Sorts in start order (`list_runs` is newest first by id): to the millisecond, since a failed
    run and its retry can start within one second."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


@dataclass
class TaskState:
    status: str = "pending"  # pending | running | success | failed | skipped | excluded
    attempts: int = 0
    exit_code: int | None = None
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None
    reason: str = ""
    outcome: bool | None = None
    log: str = ""
    child_run: str | None = None


@dataclass
class RunRecord:
    run_id: str
    job: str
    job_name: str
    deployment: str
    env: str
    target: str
    trigger: str
    persona: str
    git_sha: str
    artifact: str | None
    parameters: dict[str, Any]
    parent_run: str | None = None
    status: str = "running"  # running | success | failed | interrupted
    started: str = field(default_factory=now_iso)
    ended: str | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    tasks: dict[str, TaskState] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "tasks"}
        out["tasks"] = {k: v.__dict__ for k, v in self.tasks.items()}
        return out


def sweep_credentials(store: DeploymentStore) -> None:
    """Delete the credentials file of runs whose runner died without cleaning up (SIGKILL)."""
    for path in store.runs_dir.glob("*/env-outputs.json") if store.runs_dir.is_dir() else []:
        rec = read_json(path.with_name("run.json")) or {}
        mine = rec.get("host") == socket.gethostname()
        if rec.get("status") != "running" or (mine and not pid_alive(rec.get("pid", 0))):
            path.unlink(missing_ok=True)


def list_runs(store: DeploymentStore, job: str | None = None, limit: int = 20) -> list[dict]:
    """Newest first; a 'running' record whose runner died on this host shows as interrupted."""
    runs = []
    base = store.runs_dir
    for path in sorted(base.glob("*/run.json"), reverse=True) if base.is_dir() else []:
        rec = read_json(path)
        if not rec or (job and rec["job"] != job):
            continue
        if rec["status"] == "running" and rec.get("host") == socket.gethostname() and not pid_alive(rec.get("pid", 0)):
            rec["status"] = "interrupted"
        runs.append(rec)
        if len(runs) >= limit:
            break
    return runs


def log_tail(path: str | Path, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])
