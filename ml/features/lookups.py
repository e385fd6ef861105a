"""What a use case looks up from feature tables, and the training side of it.

A use case declares its lookups in its params.yaml (the table keys of resources/features.yml):

    feature_tables:
      customer_aggregates:
        features: [txn_count_24h, mean_amount_30d]
        version: latest          # or a table version (DVC md5) to pin

The looked-up features are ordinary feature columns of the use case (usecase.yml
`features.columns`): its feature function receives them as columns of the raw rows.

Training: `pin` (called by the ingest task) replaces `latest` with the env's newest version,
so the DVC workspace's params.yaml names the exact versions; the gold stage declares the
`feature_tables` param, so a new version re-runs it, and `join_pinned` (the gold stage)
joins each pinned version point-in-time (`ml.features.pit`). The gold table, and so the
data version the model records, is the join of those versions; `tags` says which ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.feature_tables import OFFLINE_WORKSPACE, FeatureTableError, FeatureTableSpec, definition_key, load_definition

SECTION = "feature_tables"
NONE = "none"  # pinned when a table was never refreshed: its features are the defaults


@dataclass(frozen=True)
class Wanted:
    features: list[str]
    version: str = "latest"


def _parse(raw: dict, source: str) -> dict[str, Wanted]:
    section = raw.get(SECTION) or {}
    if not isinstance(section, dict):
        raise FeatureTableError(f"{source}: {SECTION} maps table keys to {{features: [...], version: ...}}")
    out = {}
    for key, entry in section.items():
        feats = (entry or {}).get("features") if isinstance(entry, dict) else None
        if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
            raise FeatureTableError(f"{source}: {SECTION}.{key}.features must list the table's features it looks up")
        out[key] = Wanted(list(feats), str(entry.get("version") or "latest"))
    return out


def declared(uc, params_file: Path | None = None) -> dict[str, Wanted]:
    """`{table key: Wanted}` of use case `uc` (its params.yaml, or `params_file`)."""
    from ml.config import load_raw

    path = Path(params_file) if params_file else uc.params_file
    return _parse(load_raw(path), str(path))


def definitions_from(root, keys: list[str]) -> dict[str, FeatureTableSpec | None]:
    """The deployed definitions of `keys` in the env storage at `root` (a path or URI); None where
    one is not deployed or cannot be read."""
    from core.storage import Blobs

    out: dict[str, FeatureTableSpec | None] = {}
    for key in keys:
        try:
            out[key] = load_definition(key, Blobs(str(root)).read_text(definition_key(key))) if root else None
        except Exception:  # not deployed / unreadable: the lookup falls back to the store's own copy
            out[key] = None
    return out


def offline_location(ctx):
    """(offline store workspace, DVC remote) of the task's env: a DVC workspace like a use case's."""
    from ml.data.versioning import workspace_for

    return workspace_for(ctx, OFFLINE_WORKSPACE)


def pin(ctx, uc, raw: dict) -> dict[str, str]:
    """Resolve `latest` in `raw[feature_tables]` to the env's newest versions (in place; the
    section is always present, so the gold stage's DVC param is); returns `{table: version}`."""
    from ml.features import offline

    wanted = _parse(raw, str(uc.params_file))
    raw[SECTION] = {}
    if not wanted:
        return {}
    ws, _ = offline_location(ctx)
    pins = {}
    for key, w in wanted.items():
        version = w.version
        if version == "latest":
            version = offline.latest(ws, key)
            if version is None:  # the first ingest of an env: nothing to join yet, so the features are the defaults
                print(f"ingest: warning: feature table {key!r} was never refreshed in env {ctx.env!r}: its features are "
                      f"their defaults in this data version (run feature_refresh_job, then ingest again)", file=sys.stderr)
                version = NONE
        pins[key] = version
        raw[SECTION][key] = {"features": w.features, "version": version}
    return pins


def tags(pins: dict[str, str]) -> dict[str, str]:
    """MLflow tags naming the table versions a data version (and every model trained on it) joined."""
    if not pins:
        return {}
    return {"feature_tables": ",".join(f"{k}@{v}" for k, v in sorted(pins.items())),
            **{f"feature_table.{k}": v for k, v in pins.items()}}


def join_pinned(uc, rows: pd.DataFrame, params_file: Path) -> pd.DataFrame:
    """`rows` with every pinned table's features joined as of each row's timestamp (gold stage)."""
    from core import runtime
    from ml.features import offline, pit

    wanted = declared(uc, params_file)
    if not wanted:
        return rows
    if uc.timestamp is None:
        raise FeatureTableError(f"use case {uc.name!r} looks up feature tables but declares no dataset.timestamp to join as of")
    if any(w.version == "latest" for w in wanted.values()):
        raise FeatureTableError(f"{params_file}: {SECTION} versions are not pinned (the ingest task pins them)")
    pinned = {k: w for k, w in wanted.items() if w.version != NONE}
    out = rows
    if not pinned:
        return out
    ws, remote = offline_location(runtime.context())
    for key, w in pinned.items():
        table, spec = offline.read(ws, remote, key, w.version)
        out = pit.as_of(out, table, spec, w.features, uc.timestamp, key=f"feature table {key!r}")
    return out


def feature_table_tags(run_id: str) -> dict[str, str]:
    """The feature-table tags the ingest of MLflow run `run_id` set: the model version copies them,
    so a model says which table versions it was trained on."""
    import mlflow

    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k == "feature_tables" or k.startswith("feature_table.")}


def join_latest(ctx, uc, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with the env's newest version of each looked-up table joined as of each row's time
    (batch scoring: the same values the online store would have served then); tables never
    refreshed are left out (the use case's fallbacks apply)."""
    from ml.features import offline, pit

    wanted = declared(uc)
    if not wanted or uc.timestamp is None or uc.timestamp not in rows.columns:
        return rows
    ws, remote = offline_location(ctx)
    out = rows
    for key, w in wanted.items():
        version = offline.latest(ws, key) if w.version == "latest" else w.version
        if version is None:
            continue
        table, spec = offline.read(ws, remote, key, version)
        out = pit.as_of(out, table, spec, w.features, uc.timestamp, key=f"feature table {key!r}")
    return out
