"""DVC versioning of the medallion data, one isolated DVC workspace per environment and use case.

Why a workspace per env: DVC needs a git repo, and the project checkout is shared
by people and by every environment. Running `dvc repro` there would let dev, staging
and prod overwrite each other's `dvc.lock` and cache. Why one per use case too: the stages
of `dvc.yaml` write the same `data/*.parquet` for whichever use case `params.yaml` names, so
two use cases sharing a workspace would rerun (and overwrite) each other's stages. Each
(env, use case) gets `<storage.root>/dvc-workspaces/<use case>`: its own git repo + DVC
cache, `ml/` and `usecases/` linked to the code that is running, its `dvc.yaml`, and the
use case's `params.yaml` as used for that run. In a job run that code is the deployment's
(`ml.code`): the stages run the deployed medallion and feature code with the deployed
params, whatever a checkout holds; a run of another deployment relinks the workspace
under its lock, so each `dvc repro` sees one deployment's code. The env's remote is shared:
DVC addresses content by hash, so use cases cannot collide there.
Its default remote is the env's `storage.dvc_remote`, so pushed data lives in the
env's storage. The data version is the DVC md5 of `data/gold.parquet` (what training
reads); bronze/silver md5s and the workspace commit are recorded too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from filelock import FileLock
from pydantic import BaseModel

from core import settings
from core.errors import ConveyorError
from ml.code import PIPELINE, code_root, package_dir
from ml.data import stage_server

OUTPUTS = {"bronze": "data/bronze.parquet", "silver": "data/silver.parquet", "gold": "data/gold.parquet"}
LINKED = ("ml", "usecases")  # the packages the stages import, linked into the workspace


class DataVersionError(ConveyorError, RuntimeError):
    """DVC could not produce or find a data version; the message says which step."""


class DataVersion(BaseModel):
    gold_md5: str
    silver_md5: str
    bronze_md5: str
    commit: str
    rows: int | None = None

    @property
    def id(self) -> str:
        return self.gold_md5


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _env(code: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{code}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(code)
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "conveyor")
    env.setdefault("GIT_AUTHOR_EMAIL", "conveyor@localhost")
    env.setdefault("GIT_COMMITTER_NAME", "conveyor")
    env.setdefault("GIT_COMMITTER_EMAIL", "conveyor@localhost")
    return env


def _run(args: list[str], cwd: Path, code: Path, what: str, serve_stages: bool = False) -> str:
    """`args` in `cwd` with the environment of `code`; `serve_stages`: the medallion stages it
    starts run in this process (`ml.data.stage_server`: a `dvc repro` of the running code)."""
    env = _env(code)
    if serve_stages:
        proc = stage_server.run(args, cwd, env)
    else:
        env[settings.MEDALLION_SERVER.name] = ""  # not one of ours, whatever this process was told
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise DataVersionError(f"{what} failed in {cwd}:\n{tail}")
    return proc.stdout


def _is_url(remote: str | Path) -> bool:
    return "://" in str(remote)


def _sources(code: Path | None) -> tuple[Path, dict[str, Path]]:
    """(the root of the code the stages run, {linked package: its directory}): `code`'s when
    given, else the running code's (in a job run: the deployment's)."""
    if code is not None:
        return code, {package: code / package for package in LINKED}
    return code_root(), {package: package_dir(package) for package in LINKED}


def ensure_workspace(ws: Path, remote: str | Path, code: Path | None = None) -> None:
    """Create (idempotently) the env's git+DVC workspace pointing at `remote` (a directory or
    an s3:// URL; S3 settings from the AWS_* variables, as DVC's S3 remote reads them), its
    `ml/` and `usecases/` linked to the running code (or `code`'s)."""
    root, packages = _sources(code)
    ws.mkdir(parents=True, exist_ok=True)
    if not _is_url(remote):
        Path(remote).mkdir(parents=True, exist_ok=True)
    if not (ws / ".git").exists():
        _run(["git", "init", "-q", "-b", "main"], ws, root, "git init")
        (ws / ".gitignore").write_text("/ml\n/usecases\n/data/\n/restored/\n/.conveyor-*\n")
    if not (ws / ".dvc").exists():
        _run([_tool("dvc"), "init", "-q"], ws, root, "dvc init")
    if not _remote_configured(ws, remote):
        if _is_url(remote) or Path(remote).is_absolute():
            _configure(ws, remote)
        else:  # DVC stores a relative path relative to .dvc/: let it
            _run([_tool("dvc"), "remote", "add", "-f", "-d", "env", str(remote)], ws, root, "dvc remote add")
    for package, target in packages.items():
        link = ws / package
        if link.is_symlink() and Path(os.readlink(link)) != target:
            link.unlink()
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    ignore = ws / ".dvcignore"
    if "__pycache__" not in (ignore.read_text() if ignore.exists() else ""):
        with ignore.open("a") as fh:  # byte code is not a dependency of a stage
            fh.write("__pycache__/\n")
    (ws / "data" / "landing").mkdir(parents=True, exist_ok=True)


def _configure(ws: Path, remote: str | Path) -> None:
    """Write to `.dvc/config` what `dvc config core.analytics false` and `dvc remote add -f -d env
    <remote>` write there (`remote`: a URL or an absolute path), keeping the rest: each of those
    commands is a whole DVC process (~1 s of CPU)."""
    import configparser
    import io

    from core.files import atomic_write

    path = ws / ".dvc" / "config"
    config = configparser.ConfigParser()
    config.read(path)
    for section, values in (("core", {"analytics": "false", "remote": "env"}), ("'remote \"env\"'", {"url": str(remote)})):
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            config.set(section, key, value)
    text = io.StringIO()
    config.write(text)
    atomic_write(path, text.getvalue())


def _remote_configured(ws: Path, remote: str | Path) -> bool:
    """Whether the workspace's DVC config has remote `env` at `remote` as its default."""
    import configparser

    config = configparser.ConfigParser()
    try:
        config.read(ws / ".dvc" / "config")
        return config.get("core", "remote") == "env" and config.get("'remote \"env\"'", "url") == str(remote)
    except (configparser.Error, OSError):
        return False


def _lock_md5s(ws: Path) -> dict[str, str]:
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    found: dict[str, str] = {}
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            found[out["path"]] = out["md5"]
    return found


def reproduce(ws: Path, remote: str | Path, params: dict, source_file: Path | None = None, code: Path | None = None) -> DataVersion:
    """`dvc repro` + `dvc push` in the workspace with `params` and the running code's (or `code`'s)
    stages and packages; returns the data version.

    Holds a lock on the workspace so concurrent job runs in one env (of one deployment or of
    several: each links its own code) don't interleave.
    """
    root, _ = _sources(code)
    pipeline = root / PIPELINE
    if not pipeline.is_file():
        raise DataVersionError(f"no {PIPELINE} in the code at {root}: a deployment ships it in its code wheel; "
                               f"redeploy with `conveyor bundle deploy`")
    ws.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ws / ".conveyor-ingest.lock"), timeout=600):
        ensure_workspace(ws, remote, code)
        params = json.loads(json.dumps(params))  # deep copy
        landing = ws / "data" / "landing"
        for old in landing.iterdir():
            old.unlink()
        if source_file is not None:
            target = landing / f"transactions{source_file.suffix}"
            shutil.copyfile(source_file, target)
            params.setdefault("data", {})["source"] = str(target.relative_to(ws))
        else:
            params.setdefault("data", {})["source"] = "generate"
        shutil.copyfile(pipeline, ws / PIPELINE)
        (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # stages of the running code (not another `code`'s) run in this process, imports done
        _run([_tool("dvc"), "repro", "-q"], ws, root, "dvc repro", serve_stages=code is None)
        _run([_tool("dvc"), "push", "-q", "-r", "env"], ws, root, "dvc push")
        _run(["git", "add", "dvc.yaml", "dvc.lock", "params.yaml", ".gitignore", ".dvcignore", ".dvc/config"], ws, root, "git add")
        staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=ws, env=_env(root))
        if staged.returncode != 0 or not (ws / ".git" / "refs" / "heads" / "main").exists():
            _run(["git", "commit", "-q", "-m", "ingest"], ws, root, "git commit")
        commit = _run(["git", "rev-parse", "HEAD"], ws, root, "git rev-parse").strip()
        md5 = _lock_md5s(ws)
        return DataVersion(gold_md5=md5[OUTPUTS["gold"]], silver_md5=md5[OUTPUTS["silver"]], bronze_md5=md5[OUTPUTS["bronze"]], commit=commit)


def cache_file(ws: Path, md5: str) -> Path:
    """Where DVC 3 keeps content `md5` in the workspace cache."""
    return ws / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def restore(remote: str | Path, md5: str, out: Path) -> Path:
    """Materialise the file with DVC hash `md5` from `remote` into `out` via `dvc pull`.

    Builds a throw-away DVC repo holding only a `.dvc` pointer to that hash, so it
    needs nothing but the env's remote — the same thing a person does by hand.
    """
    root = code_root()
    key = f"files/md5/{md5[:2]}/{md5[2:]}"
    if _is_url(remote):
        from core.storage import Blobs, StorageError

        try:
            present = Blobs(str(remote)).exists(key)
        except (StorageError, OSError) as exc:  # the remote is unreachable or refuses us
            raise DataVersionError(f"cannot read the DVC remote {remote}: {exc}") from exc
    else:
        present = (Path(remote) / key).exists()
    if not present:
        raise DataVersionError(f"data version {md5} is not in the DVC remote {remote}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conveyor-restore-") as tmp:
        repo = Path(tmp)
        _run(["git", "init", "-q"], repo, root, "git init")
        _run([_tool("dvc"), "init", "-q"], repo, root, "dvc init")
        _run([_tool("dvc"), "remote", "add", "-d", "env", str(remote)], repo, root, "dvc remote add")
        (repo / "data.parquet.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": "data.parquet", "hash": "md5"}]}))
        _run([_tool("dvc"), "pull", "-q", "data.parquet.dvc"], repo, root, "dvc pull")
        shutil.copyfile(repo / "data.parquet", out)
    return out


def read_version(ws: Path, remote: str | Path, md5: str) -> Path:
    """A local path holding data version `md5`: the workspace cache, else pulled from the remote."""
    cached = cache_file(ws, md5)
    if cached.exists():
        return cached
    return restore(remote, md5, ws / "restored" / f"{md5}.parquet")


WORKSPACES = "dvc-workspaces"


def workspace_for(ctx, use_case: str) -> tuple[Path, str | Path]:
    """(workspace dir, DVC remote) of use case `use_case` in the task's environment: the remote is
    a directory on the local platform, an s3:// URL on the kubernetes platform (the workspace is
    local either way)."""
    from core.contract import local_path
    from core.storage import is_local

    remote = ctx.outputs.storage.dvc_remote
    return ctx.storage_path("root") / WORKSPACES / use_case, local_path(remote) if is_local(remote) else remote
