"""Feature tables: computed once by a refresh job, versioned offline, looked up online.

- `compute`: a table's rows (per entity and event time, trailing-window aggregates) from source rows;
- `pit`: the point-in-time join (each row gets the values as of its own timestamp, never later);
- `offline`: the offline store, one DVC version per refresh with its lineage;
- `online`: serving lookups (defaults, policy, counts) and the refresh's write of the online store;
- `stores`: the online store backends (SQLite files by default, PostgreSQL on kubernetes);
- `lookups`: what a use case looks up (its params.yaml `feature_tables`), pinned at ingest,
  joined into the gold table;
- `refresh`: the job task (`python -m ml.features.refresh`).

The declaration itself is `core.feature_tables` (shared with `bundle deploy`). docs/feature-tables.md.
"""
