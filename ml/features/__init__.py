"""Feature tables: computed once by a refresh job, versioned offline, looked up online.

- `compute`: a table's rows (per entity and event time, trailing-window aggregates) from source rows;
- `pit`: the point-in-time join (each row gets the values as of its own timestamp, never later);
- `offline`: the offline store, one DVC version per refresh with its lineage;
- `online`: the online store (latest values per entity, SQLite per env) and serving lookups;
- `lookups`: what a use case looks up (its params.yaml `feature_tables`), pinned at ingest,
  joined into the gold table;
- `refresh`: the job task (`python -m ml.features.refresh`).

The declaration itself is `core.feature_tables` (shared with `bundle deploy`). docs/feature-tables.md.
"""
