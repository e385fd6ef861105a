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

`storage.bundle` is a directory (local platform) or an S3 prefix (kubernetes platform).
On S3, `code/` and `runs/` are the machine's own: they live in a local working directory
(see `work_dir`): tasks import code from disk, and a run's records stay where it ran
(on a cluster: the Job's pod and its logs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bundles import artifact as artifacts
from bundles.errors import BundleError
from core.contract import EnvironmentOutputs, local_path
from core.files import atomic_write
from core.storage import Blobs, StorageError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Atomic write: readers (scheduler, a concurrent summary) never see half a file."""
    atomic_write(path, json.dumps(data, indent=2, default=str))


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


def bundle_blobs(outputs: EnvironmentOutputs) -> Blobs:
    """The env's bundle storage (`storage.bundle`): a directory or an S3 prefix."""
    try:
        return Blobs(outputs.storage.bundle)
    except StorageError as exc:
        raise BundleError(f"environment {outputs.env!r}: {exc}") from None


def bundle_root(outputs: EnvironmentOutputs) -> Path:
    """`storage.bundle` as a local directory (the local platform's scheduler status lives there)."""
    try:
        return local_path(outputs.storage.bundle)
    except ValueError:
        raise BundleError(f"environment {outputs.env!r} keeps bundle state at {outputs.storage.bundle}, "
                          f"not in a local directory") from None


def all_deployments(outputs: EnvironmentOutputs) -> list[str]:
    """Ids of every deployment in the env (`<bundle>.<target>[.<user>]`)."""
    return bundle_blobs(outputs).list("deployments", dirs=True)


def target_of(deployment_id: str) -> str:
    """The bundle target of deployment id `<bundle>.<target>[.<user>]` (what `-t` names)."""
    parts = deployment_id.split(".")
    return parts[1] if len(parts) > 1 else deployment_id


def deploy_command(deployment_id: str) -> str:
    """The command that (re)deploys `deployment_id`, quoted for an error message."""
    return f"`conveyor bundle deploy -t {target_of(deployment_id)}`"


def work_dir(outputs: EnvironmentOutputs, deployment_id: str) -> Path:
    """Where this machine keeps a deployment's local side: run records/logs and unpacked code.

    On file:// storage that is the deployment's own directory (one machine sees it all); on
    s3:// it is a cache under $CONVEYOR_HOME, keyed by the storage URI so envs never mix.
    """
    blobs = bundle_blobs(outputs)
    if blobs.local is not None:
        return blobs.local / "deployments" / deployment_id
    from core.paths import state_dir

    key = hashlib.sha256(blobs.uri.encode()).hexdigest()[:12]
    return state_dir() / "remote" / f"{outputs.env}-{key}" / deployment_id


class DeploymentStore:
    """A deployment's state in env storage (any `Blobs`), plus its local working directory."""

    def __init__(self, outputs: EnvironmentOutputs, deployment_id: str):
        self.outputs = outputs
        self.deployment_id = deployment_id
        self.blobs = bundle_blobs(outputs).child("deployments", deployment_id)
        self.root = work_dir(outputs, deployment_id)

    @property
    def remote(self) -> bool:
        return self.blobs.local is None

    # local paths (file:// storage: inside it; s3://: the cache)
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def journal_path(self) -> Path:
        return self.root / "state.journal"

    def artifact_dir(self, content_hash: str) -> Path:
        return self.root / "artifacts" / content_hash[:16]

    def code_dir(self, content_hash: str) -> Path:
        return self.root / "code" / content_hash[:16]

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def exists(self) -> bool:
        return self.blobs.exists("state.json") or self.has_journal()

    # state
    def has_journal(self) -> bool:
        return self.blobs.exists("state.journal")

    def raw_state(self) -> dict:
        return json.loads(self.blobs.read_text("state.json") or "{}")

    def load_state(self, default: DeploymentState) -> DeploymentState:
        """state.json plus the journal of a deploy that did not finish (killed midway)."""
        data = self.raw_state()
        state = DeploymentState.model_validate(data) if data else default
        text = self.blobs.read_text("state.journal")
        for line in (text or "").splitlines():
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
        """Journal one applied action (replayed by load_state): an O(1) append on disk; object
        stores have no append, so there the journal object is rewritten (one PUT)."""
        rec = state.resources.get(key)
        entry = json.dumps({"key": key, "record": rec.model_dump(mode="json") if rec else None,
                            "artifact": state.artifact, "wheel": state.wheel}, default=str) + "\n"
        if self.blobs.local is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.journal_path, "a") as fh:
                fh.write(entry)
            return
        self.blobs.write_text("state.journal", (self.blobs.read_text("state.journal") or "") + entry)

    def save_state(self, state: DeploymentState) -> None:
        self.blobs.write_text("state.json", json.dumps(state.model_dump(mode="json"), indent=2, default=str))
        self.blobs.delete("state.journal")

    # registered objects (jobs, endpoints, monitors)
    def write_object(self, kind: str, key: str, data: dict) -> None:
        self.blobs.write_text(f"{kind}/{key}.json", json.dumps(data, indent=2, default=str))

    def read_object(self, kind: str, key: str) -> dict | None:
        text = self.blobs.read_text(f"{kind}/{key}.json")
        return json.loads(text) if text else None

    def delete_object(self, kind: str, key: str) -> None:
        self.blobs.delete(f"{kind}/{key}.json")

    def objects(self, kind: str) -> dict[str, dict]:
        """`{key: document}` of every registered object of one kind."""
        out = {}
        for name in self.blobs.list(kind):
            if name.endswith(".json") and (doc := self.read_object(kind, name[:-5])) is not None:
                out[name[:-5]] = doc
        return out

    # code: the wheel lives in env storage; tasks import it unpacked on the machine that runs them
    def has_code(self, content_hash: str) -> bool:
        return any(n.endswith(".whl") for n in self.blobs.list(f"artifacts/{content_hash[:16]}"))

    def put_code(self, content_hash: str, wheel: Path) -> None:
        """Store the wheel (and, on a local disk, unpack it where tasks import it from)."""
        self.blobs.upload(wheel, f"artifacts/{content_hash[:16]}/{wheel.name}")
        if not self.remote:
            artifacts.unpack(wheel, self.code_dir(content_hash))

    def ensure_code(self, content_hash: str) -> Path | None:
        """The unpacked code of `content_hash` on this machine, fetched from storage if needed."""
        code = self.code_dir(content_hash)
        if code.is_dir():
            return code
        wheels = [n for n in self.blobs.list(f"artifacts/{content_hash[:16]}") if n.endswith(".whl")]
        if not wheels:
            return None
        local = self.artifact_dir(content_hash) / wheels[0]
        if not local.is_file():
            self.blobs.download(f"artifacts/{content_hash[:16]}/{wheels[0]}", local)
        artifacts.unpack(local, code)
        return code

    def prune_code(self, keep: set[str]) -> None:
        short = {h[:16] for h in keep}
        for name in self.blobs.list("artifacts", dirs=True):
            if name not in short:
                self.blobs.delete_tree(f"artifacts/{name}")
        for sub in ("artifacts", "code"):
            base = self.root / sub
            for path in base.iterdir() if base.is_dir() else []:
                if path.name not in short:
                    shutil.rmtree(path, ignore_errors=True)

    def wipe(self) -> None:
        """Everything of this deployment but its lock (call it holding the lock), in storage
        and in the local working directory; `remove()` drops what is left once released."""
        for name in self.blobs.list():
            if name != "lock.json":
                self.blobs.delete(name)
        for name in self.blobs.list(dirs=True):
            if name != "takeover":
                self.blobs.delete_tree(name)
        if self.remote:
            shutil.rmtree(self.root, ignore_errors=True)  # the local cache (on disk, root *is* the store)

    def remove(self) -> None:
        """The deployment's emptied, unlocked directory; a deploy that started meanwhile keeps it."""
        if self.blobs.local is None:
            return
        for path in (self.blobs.local / "takeover", self.blobs.local):
            try:
                path.rmdir()
            except OSError:
                pass

    # lock
    def lock(self, persona: str, user: str, operation: str, force: bool = False) -> DeployLock:
        return DeployLock(self.blobs, persona=persona, user=user, operation=operation, force=force)


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

    The holder is recorded in lock.json (who, where, since) so the loser can be told.
    Taking a free lock is one exclusive create (a hard link on disk, a conditional PUT on
    S3), so of two racing deploys exactly one wins. A lock left by a killed process on
    this host is taken over automatically, any other held lock only with `--force-lock`.
    """

    def __init__(self, blobs: Blobs, persona: str, user: str, operation: str, force: bool):
        self.blobs = blobs
        self.name = blobs.uri.rsplit("/", 1)[-1]
        self.force = force
        self.took_over: LockInfo | None = None
        self.info = LockInfo(
            id=uuid.uuid4().hex, user=user, persona=persona, host=socket.gethostname(),
            pid=os.getpid(), since=now_iso(), operation=operation,
        )

    def __enter__(self) -> DeployLock:
        mine = self.info.model_dump_json()
        for _ in range(3):
            if self.blobs.create("lock.json", mine):
                return self
            held = self.blobs.read_text("lock.json")
            if held is None:
                continue  # released between our two calls: try again
            holder = LockInfo.model_validate_json(held)
            stale = holder.host == self.info.host and not pid_alive(holder.pid)
            if not (stale or self.force):
                raise self._held(holder)
            # Take over: of several processes taking over this holder at once, exactly one
            # wins the exclusive claim on it; the others see the lock as held (by the winner).
            if not self.blobs.create(f"takeover/{holder.id}", mine):
                raise self._held(holder)
            current = self.blobs.read_text("lock.json")
            if current is not None and json.loads(current).get("id") != holder.id:
                raise self._held(LockInfo.model_validate_json(current))
            self.took_over = holder
            self.blobs.delete("lock.json")
        raise BundleError(f"deploy lock for {self.name}: could not take it after 3 attempts (contended); retry")

    def _held(self, holder: LockInfo) -> BundleError:
        return BundleError(
            f"deploy lock for {self.name} is held by {holder.user} (persona {holder.persona}, "
            f"{holder.operation}, pid {holder.pid} on {holder.host}) since {holder.since}; "
            f"wait for it to finish or pass --force-lock"
        )

    def __exit__(self, *exc: object) -> None:
        held = self.blobs.read_text("lock.json")
        if held and json.loads(held).get("id") == self.info.id:
            self.blobs.delete("lock.json")
        if self.took_over is not None:
            self.blobs.delete(f"takeover/{self.took_over.id}")
            if self.blobs.local is not None:  # (object stores have no empty directories to leave)
                try:
                    (self.blobs.local / "takeover").rmdir()
                except OSError:
                    pass
