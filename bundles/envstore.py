"""What a deployment keeps in its environment's storage, and the per-target deploy lock.

Layout under `storage.bundle` (one directory per deployment, i.e. bundle × target,
plus the user in development mode):

    deployments/<bundle>.<target>[.<user>]/
        state.json            deployed resources, sequence, git sha, deployer, time
        lock.json             holder of the deploy lock (absent when free)
        artifacts/<hash>/     the code wheel
        code/<hash>/          the wheel unpacked: what job tasks import
        jobs/<job>.json       registered jobs (+ schedules) — read by the runner and scheduler
        serving_endpoints/<key>.json, monitors/<key>.json
        runs/<run_id>/        run.json, logs/<task>.log, values/<task>.json
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel

from bundles.errors import BundleError
from infra.contract import EnvironmentOutputs, local_path


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Atomic write: readers (scheduler, a concurrent summary) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


class ResourceRecord(BaseModel):
    kind: str
    key: str
    name: str | None = None
    id: str | None = None
    fingerprint: str
    created: bool = True  # False: existed before (adopted) — destroy leaves it in place
    grants: list[dict[str, str]] = []  # [{"principal", "username", "permission"}] as applied
    spec: dict[str, Any] = {}


class DeploymentInfo(BaseModel):
    sequence: int
    git_sha: str
    git_branch: str | None = None
    deployer: str
    persona: str
    time: str
    artifact: str | None = None
    changes: int = 0


class DeploymentState(BaseModel):
    bundle: str
    target: str
    env: str
    mode: str
    deployment_id: str
    sequence: int = 0
    artifact: str | None = None
    wheel: str | None = None
    resources: dict[str, ResourceRecord] = {}
    last: DeploymentInfo | None = None
    history: list[DeploymentInfo] = []


class LockInfo(BaseModel):
    id: str
    user: str
    persona: str
    host: str
    pid: int
    since: str
    operation: str


def bundle_root(outputs: EnvironmentOutputs) -> Path:
    try:
        return local_path(outputs.storage.bundle)
    except ValueError:
        raise BundleError(
            f"environment {outputs.env!r} keeps bundle state at {outputs.storage.bundle}: only file:// storage "
            f"is supported by this bundle engine so far"
        ) from None


def all_deployments(outputs: EnvironmentOutputs) -> list[Path]:
    base = bundle_root(outputs) / "deployments"
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


class DeploymentStore:
    def __init__(self, outputs: EnvironmentOutputs, deployment_id: str):
        self.outputs = outputs
        self.deployment_id = deployment_id
        self.root = bundle_root(outputs) / "deployments" / deployment_id

    # paths
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def artifact_dir(self, content_hash: str) -> Path:
        return self.root / "artifacts" / content_hash[:16]

    def code_dir(self, content_hash: str) -> Path:
        return self.root / "code" / content_hash[:16]

    def kind_dir(self, kind: str) -> Path:
        return self.root / kind

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def exists(self) -> bool:
        return self.state_path.is_file() or self.journal_path.is_file()

    # state
    @property
    def journal_path(self) -> Path:
        return self.root / "state.journal"

    def load_state(self, default: DeploymentState) -> DeploymentState:
        """state.json plus the journal of a deploy that did not finish (killed midway)."""
        data = read_json(self.state_path)
        state = DeploymentState.model_validate(data) if data else default
        try:
            lines = self.journal_path.read_text().splitlines()
        except FileNotFoundError:
            return state
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                break  # a line cut by the kill: everything before it happened
            if entry["record"] is None:
                state.resources.pop(entry["key"], None)
            else:
                state.resources[entry["key"]] = ResourceRecord.model_validate(entry["record"])
            state.artifact, state.wheel = entry["artifact"], entry["wheel"]
        return state

    def record_action(self, state: DeploymentState, key: str) -> None:
        """Append one applied action to the journal: O(1) per action, replayed by load_state."""
        rec = state.resources.get(key)
        entry = {"key": key, "record": rec.model_dump(mode="json") if rec else None,
                 "artifact": state.artifact, "wheel": state.wheel}
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.journal_path, "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")

    def save_state(self, state: DeploymentState) -> None:
        write_json(self.state_path, state.model_dump(mode="json"))
        self.journal_path.unlink(missing_ok=True)

    # registered objects (jobs, endpoints, monitors)
    def write_object(self, kind: str, key: str, data: dict) -> None:
        write_json(self.kind_dir(kind) / f"{key}.json", data)

    def read_object(self, kind: str, key: str) -> dict | None:
        return read_json(self.kind_dir(kind) / f"{key}.json")

    def delete_object(self, kind: str, key: str) -> None:
        (self.kind_dir(kind) / f"{key}.json").unlink(missing_ok=True)

    # lock
    def lock(self, persona: str, user: str, operation: str, force: bool = False) -> "DeployLock":
        return DeployLock(self.root, persona=persona, user=user, operation=operation, force=force)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a lock or run record may outlive its owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeployLock:
    """One deploy/destroy per target at a time.

    The holder is recorded in lock.json (who, where, since) so the loser can be told;
    a lock left by a killed process on this host is taken over automatically, any
    other held lock only with `--force-lock`.
    """

    def __init__(self, root: Path, persona: str, user: str, operation: str, force: bool):
        self.root = root
        self.path = root / "lock.json"
        self.force = force
        self.took_over: LockInfo | None = None
        self.info = LockInfo(
            id=uuid.uuid4().hex, user=user, persona=persona, host=socket.gethostname(),
            pid=os.getpid(), since=now_iso(), operation=operation,
        )

    def _guard(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock.guard"), timeout=30)

    def __enter__(self) -> "DeployLock":
        with self._guard():
            held = read_json(self.path)
            if held:
                holder = LockInfo.model_validate(held)
                stale = holder.host == self.info.host and not pid_alive(holder.pid)
                if not (stale or self.force):
                    raise BundleError(
                        f"deploy lock for {self.root.name} is held by {holder.user} (persona {holder.persona}, "
                        f"{holder.operation}, pid {holder.pid} on {holder.host}) since {holder.since}; "
                        f"wait for it to finish or pass --force-lock"
                    )
                self.took_over = holder
            write_json(self.path, self.info.model_dump())
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard():
            held = read_json(self.path)
            if held and held.get("id") == self.info.id:
                self.path.unlink(missing_ok=True)
