"""Task `refresh`: compute feature tables from the env's data, version them, materialise the online store.

For each table (`--table KEY`, repeatable; default: every table deployed to the env):
1. read its deployed definition (`bundle deploy` wrote it: resources.feature_tables);
2. read its source: the env's current silver table of the source use case (the last ingest);
3. compute it (`ml.features.compute`), checking the source has the declared columns;
4. write a new offline version (DVC add + push, lineage committed: `ml.features.offline`);
5. materialise each entity's newest values into the online store (`ml.features.online`): SQLite under
   the env's storage, or the networked store the platform names (CONVEYOR_ONLINE_STORE_URL).

Publishes `<key>_version` per table (and `version` when there is one). A missing
definition or source stops the task with one line saying what to run first; the online
store is replaced only after the offline version exists, so both stay consistent.
"""

from __future__ import annotations

import datetime as dt

from core import runtime, settings
from core.feature_tables import DEFINITIONS, FeatureTableError, FeatureTableSpec, definition_key, load_definition
from ml import task


def deployed_keys(root_uri: str) -> list[str]:
    from core.storage import Blobs

    return sorted(n[:-5] for n in Blobs(root_uri).list(DEFINITIONS) if n.endswith(".json"))


def read_source(ctx, key: str, spec: FeatureTableSpec):
    """(source frame, lineage of it) — the env's current silver of the source use case."""
    import pandas as pd

    from ml.data.versioning import _lock_md5s, _run, read_version, workspace_for

    ws, remote = workspace_for(ctx, spec.source.use_case)
    if not (ws / "dvc.lock").is_file():
        raise FeatureTableError(f"refresh of feature table {key!r}: use case {spec.source.use_case!r} has no "
                                f"{spec.source.table} data in env {ctx.env!r} yet (run its ingest first, e.g. the "
                                f"model_training_job)")
    md5 = _lock_md5s(ws).get(f"data/{spec.source.table}.parquet")
    if md5 is None:
        raise FeatureTableError(f"refresh of feature table {key!r}: the {spec.source.use_case!r} workspace has no "
                                f"{spec.source.table} table")
    commit = _run(["git", "rev-parse", "HEAD"], ws, ws, "git rev-parse").strip()
    frame = pd.read_parquet(read_version(ws, remote, md5))
    return frame, {"use_case": spec.source.use_case, "table": spec.source.table, "md5": md5, "data_commit": commit,
                   "rows": len(frame)}


def refresh(ctx, key: str) -> dict:
    """Refresh one table; returns what was written."""
    from core.storage import Blobs
    from ml.features import compute, offline, online
    from ml.features.lookups import offline_location
    from ml.features.stores import open_store

    spec = load_definition(key, Blobs(ctx.outputs.storage.root).read_text(definition_key(key)))
    source, source_lineage = read_source(ctx, key, spec)
    table = compute.compute_table(key, spec, source)
    lineage = {
        "table": key, "source": source_lineage, "definition": spec.model_dump(mode="json"),
        "git_sha": ctx.git_sha, "job": ctx.job or "manual", "job_run_id": ctx.run_id or "manual", "env": ctx.env,
        "rows": len(table), "entities": int(table[spec.entity_key].nunique()),
        "event_time": {"min": str(table[spec.timestamp].min()), "max": str(table[spec.timestamp].max())},
        "refreshed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    ws, remote = offline_location(ctx)
    version = offline.write(ws, remote, key, table, lineage)
    latest = compute.latest_per_entity(spec, table)
    store = open_store(ctx.storage_path("root"), settings.ONLINE_STORE_URL.get())  # the platform's choice
    online_rows = online.materialise(store, key, spec, latest, version.md5)
    return {"key": key, "version": version.md5, "commit": version.commit, "rows": len(table), "online_rows": online_rows,
            "source_md5": source_lineage["md5"]}


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.features.refresh", __doc__)
    ap.add_argument("--table", action="append", default=[], help="a feature table key (default: every deployed one)")
    args = ap.parse_args(argv)

    def body() -> int:
        ctx = runtime.context()
        keys = [k for k in args.table if k] or deployed_keys(ctx.outputs.storage.root)
        if not keys:
            raise FeatureTableError(f"no feature table is deployed to env {ctx.env!r} (resources.feature_tables, "
                                    "then `conveyor bundle deploy`)")
        done = [refresh(ctx, key) for key in keys]
        for d in done:
            task.publish(f"{d['key']}_version", d["version"])
            print(f"refresh: {d['key']} -> version {d['version']} ({d['rows']} rows from {d['source_md5'][:10]}, "
                  f"{d['online_rows']} entities online, commit {d['commit'][:10]})")
        if len(done) == 1:
            task.publish("version", done[0]["version"])
        return 0

    return task.run_task("refresh", body)


if __name__ == "__main__":
    raise SystemExit(main())
