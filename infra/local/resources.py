"""Pulumi dynamic resources for the local platform.

No provider plugins can be downloaded here, so each local thing Pulumi manages — a
directory tree, a file, a supervised process (and, in `users.py`, a set of MLflow users)
— is a small dynamic provider with real create/read/update/delete. `read` reports what
is actually running so that `pulumi refresh` notices a dead process and the next `up`
repairs it. (Generated secrets are shared by every platform: `infra.components.secrets`.)

What they create is owner-only: directory trees 0700, files 0600 (`core.files`).
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from core.files import atomic_write, make_tree_private, private_dir
# Stacks created before RandomSecret moved to infra.components keep its provider pickled
# under this module's name; destroying or refreshing them unpickles it from here.
from infra.components.secrets import _RandomSecretProvider  # noqa: F401
from infra.local import supervisor


def _changed(olds: dict[str, Any], news: dict[str, Any], keys: list[str]) -> list[str]:
    return [k for k in keys if olds.get(k) != news.get(k)]


# --------------------------------------------------------------------------- directories
class _DirectoryTreeProvider(ResourceProvider):
    def create(self, props):
        root = Path(props["root"])
        private_dir(root)
        for sub in props["subdirs"]:
            private_dir(root / sub)
        return CreateResult(id_=str(root), outs={**props, "exists": True})

    def read(self, id_, props):
        return ReadResult(id_=id_, outs={**props, "exists": Path(props["root"]).is_dir()})

    def diff(self, _id, olds, news):
        replaces = _changed(olds, news, ["root"])
        changes = bool(replaces) or olds.get("subdirs") != news.get("subdirs") or olds.get("exists") is False
        changes = changes or _changed(olds, news, ["retain_on_delete", "private"]) != []
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=False)

    def update(self, _id, olds, news):
        if not olds.get("private"):
            # A tree made before state was kept private: whatever is in it becomes owner-only.
            make_tree_private(news["root"])
        return UpdateResult(outs=self.create(news).outs)

    def delete(self, _id, props):
        if not props.get("retain_on_delete"):
            shutil.rmtree(props["root"], ignore_errors=True)


class DirectoryTree(Resource, module="conveyor", name="DirectoryTree"):
    """An owner-only directory (0700) with fixed sub-directories; removed on destroy unless retained."""

    root: pulumi.Output[str]

    def __init__(self, name: str, root: str, subdirs: list[str], retain_on_delete: bool,
                 opts: pulumi.ResourceOptions | None = None):
        props = {"root": root, "subdirs": subdirs, "retain_on_delete": retain_on_delete, "private": True,
                 "exists": None}
        super().__init__(_DirectoryTreeProvider(), name, props, opts)


# --------------------------------------------------------------------------- files
class _FileProvider(ResourceProvider):
    def _write(self, props):
        atomic_write(props["path"], props["content"], mode=int(props["mode"], 8))

    def create(self, props):
        self._write(props)
        return CreateResult(id_=props["path"], outs=props)

    def read(self, id_, props):
        path = Path(props["path"])
        content = path.read_text() if path.exists() else None
        return ReadResult(id_=id_, outs={**props, "content": content})

    def diff(self, _id, olds, news):
        replaces = _changed(olds, news, ["path"])
        changes = bool(replaces) or _changed(olds, news, ["content", "mode"]) != []
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, _id, _olds, news):
        self._write(news)
        return UpdateResult(outs=news)

    def delete(self, _id, props):
        Path(props["path"]).unlink(missing_ok=True)


class LocalFile(Resource, module="conveyor", name="LocalFile"):
    """A file with exact content and mode (0600 for anything holding secrets)."""

    path: pulumi.Output[str]

    def __init__(self, name: str, path: str, content: pulumi.Input[str], mode: str = "600",
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(_FileProvider(), name, {"path": path, "content": content, "mode": mode}, opts)


# --------------------------------------------------------------------------- processes
def wait_healthy(url: str | None, timeout: float) -> None:
    """Block until `url` answers below 500 (any auth answer counts: the process is up)."""
    if not url:
        return
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f}s ({last})")


class _SupervisedProgramProvider(ResourceProvider):
    _INPUTS = ["command", "directory", "environment", "health_url", "startsecs", "stopsignal", "triggers"]

    def _start(self, props, restart: bool) -> dict:
        run_dir = Path(props["run_dir"])
        supervisor.ensure_daemon(props["env"], run_dir)
        supervisor.write_program(run_dir, props["name"], props["command"], props["directory"],
                                 props["environment"], int(props["startsecs"]), props.get("stopsignal") or "TERM")
        supervisor.apply(run_dir, restart=props["name"] if restart else None)
        try:
            wait_healthy(props.get("health_url"), float(props["start_timeout"]))
        except RuntimeError as exc:
            log = run_dir / "logs" / f"{props['name']}.log"
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise RuntimeError(f"{props['name']} ({props['env']}) failed to start: {exc}\n{tail}") from None
        info = supervisor.wait_running(run_dir, props["name"], float(props["start_timeout"]))
        return {**props, "running": info.get("statename") == "RUNNING", "pid": info.get("pid", 0)}

    def create(self, props):
        try:
            outs = self._start(props, restart=False)
        except Exception:
            # A failed create leaves nothing in the stack state to destroy later: clean up now.
            self.delete("", props)
            raise
        return CreateResult(id_=f"{props['env']}/{props['name']}", outs=outs)

    def read(self, id_, props):
        info = supervisor.program_info(Path(props["run_dir"]), props["name"]) or {}
        running = info.get("statename") == "RUNNING"
        return ReadResult(id_=id_, outs={**props, "running": running, "pid": info.get("pid", 0)})

    def diff(self, _id, olds, news):
        replaces = _changed(olds, news, ["name", "run_dir", "env"])
        changed = _changed(olds, news, self._INPUTS)
        not_running = olds.get("running") is False
        return DiffResult(changes=bool(replaces or changed or not_running), replaces=replaces,
                          delete_before_replace=True)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._start(news, restart=True))

    def delete(self, _id, props):
        run_dir = Path(props["run_dir"])
        supervisor.remove_program(run_dir, props["name"])
        if not any((run_dir / "programs").glob("*.conf")):
            supervisor.stop_daemon(run_dir)


class SupervisedProgram(Resource, module="conveyor", name="SupervisedProgram"):
    """A long-running process under the env's supervisord, healthy before `up` returns."""

    running: pulumi.Output[bool]
    pid: pulumi.Output[int]

    def __init__(self, name: str, *, env: str, run_dir: str, program: str, command: list[str],
                 directory: str, environment: pulumi.Input[dict[str, str]], health_url: str | None = None,
                 startsecs: int = 3, start_timeout: int = 300, triggers: pulumi.Input[str] | None = None,
                 stopsignal: str | None = None, opts: pulumi.ResourceOptions | None = None):
        """`triggers`: a digest of config files the process reads at start; a change restarts it.
        `stopsignal`: the signal that stops it cleanly, when not SIGTERM (e.g. "INT")."""
        props = {
            "env": env, "run_dir": run_dir, "name": program, "command": command, "directory": directory,
            "environment": environment, "health_url": health_url, "startsecs": startsecs,
            "start_timeout": start_timeout, "triggers": triggers, "running": None, "pid": None,
        }
        if stopsignal:  # absent otherwise: programs of existing stacks see no change
            props["stopsignal"] = stopsignal
        super().__init__(_SupervisedProgramProvider(), name, props, opts)
