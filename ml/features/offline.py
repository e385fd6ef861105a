"""The offline store: every refresh of a table is a DVC data version with its lineage.

One git+DVC workspace per env (`<storage root>/dvc-workspaces/feature-tables`, remote: the
env's DVC remote, as the use cases' data workspaces): `tables/<key>.parquet` is `dvc add`ed
and pushed, and `tables/<key>.lineage.json` — which source data version, code and definition
produced it — is committed next to its `.dvc` pointer, so `git log` of the workspace is the
table's history and any version can be pulled back by its md5 (`read`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from filelock import FileLock

from core.feature_tables import FeatureTableError, FeatureTableSpec
from core.files import atomic_write
from ml.data.versioning import _run, _tool, ensure_workspace, read_version


@dataclass(frozen=True)
class TableVersion:
    key: str
    md5: str
    commit: str  # the workspace commit that records it (and its lineage)


def write(ws: Path, remote, key: str, table: pd.DataFrame, lineage: dict) -> TableVersion:
    """Version `table` as the newest refresh of `key` (dvc add + push, lineage committed)."""
    ensure_workspace(ws, remote)
    with FileLock(str(ws / ".conveyor-refresh.lock"), timeout=600):
        folder = ws / "tables"
        folder.mkdir(exist_ok=True)
        data = folder / f"{key}.parquet"
        _write_parquet(data, table, lineage.get("definition") or {})
        _run([_tool("dvc"), "add", "-q", str(data.relative_to(ws))], ws, ws, "dvc add")
        md5 = _pointer_md5(ws, key)
        atomic_write(folder / f"{key}.lineage.json", json.dumps({**lineage, "version": md5}, indent=2, sort_keys=True, default=str))
        _run([_tool("dvc"), "push", "-q", "-r", "env", f"tables/{key}.parquet.dvc"], ws, ws, "dvc push")
        _run(["git", "add", f"tables/{key}.parquet.dvc", f"tables/{key}.lineage.json", "tables/.gitignore", ".gitignore",
              ".dvcignore", ".dvc/config"], ws, ws, "git add")
        _run(["git", "commit", "-q", "--allow-empty", "-m", f"refresh {key} -> {md5}"], ws, ws, "git commit")
        commit = _run(["git", "rev-parse", "HEAD"], ws, ws, "git rev-parse").strip()
        return TableVersion(key, md5, commit)


META = b"conveyor.feature_table"


def _write_parquet(path: Path, table: pd.DataFrame, definition: dict) -> None:
    """The table with its definition in the file's metadata: every version describes itself."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = {**(arrow.schema.metadata or {}), META: json.dumps(definition, sort_keys=True).encode()}
    pq.write_table(arrow.replace_schema_metadata(meta), path)


def _pointer_md5(ws: Path, key: str) -> str:
    pointer = ws / "tables" / f"{key}.parquet.dvc"
    return yaml.safe_load(pointer.read_text())["outs"][0]["md5"]


def latest(ws: Path, key: str) -> str | None:
    """The version (md5) of the newest refresh of `key` in this env, or None when it was never refreshed."""
    if not (ws / "tables" / f"{key}.parquet.dvc").is_file():
        return None
    return _pointer_md5(ws, key)


def read(ws: Path, remote, key: str, md5: str) -> tuple[pd.DataFrame, FeatureTableSpec]:
    """Version `md5` of table `key` and the definition it was computed with: from the workspace
    cache, else pulled from the env's remote."""
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(read_version(ws, remote, md5))
        spec = FeatureTableSpec.model_validate_json((arrow.schema.metadata or {})[META])
    except Exception as exc:  # DataVersionError (not in the remote), an unreadable or foreign file
        raise FeatureTableError(f"feature table {key!r} version {md5}: {exc}") from exc
    return arrow.to_pandas(), spec
