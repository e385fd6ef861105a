"""The online store (one SQLite file per table and env) and the serving-time lookup.

`materialise` writes each entity's newest values to `<env storage>/feature-store/online/<key>.sqlite`
as a new file swapped in with one rename, so a reader sees the old store or the new one,
never half of either. The file carries its definition (defaults, ttl) and version.

`Lookups` is what the serving engine calls (`augment`, one call per scored batch): for each
table the endpoint's use case looks up (params.yaml `feature_tables`), one indexed SELECT by
entity key, then the same rules as the training join (`ml.features.pit`): a value older than
its max age as of now, or an unknown entity, is the declared default. Each row is annotated
with what happened (`fs_<table>`: hit / default / unavailable and the table version), which
the inference table logs next to the values used (`f_<feature>`).

When a store cannot be read (never refreshed, file gone, corrupt), CONVEYOR_ONLINE_STORE_POLICY
decides: `defaults` (the default) serves the declared defaults and counts the rows in
`unavailable_rows`; `reject` answers 503 (`FeatureStoreUnavailable`, retry later).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import settings
from core.feature_tables import ONLINE, FeatureTableSpec
from ml.features.pit import max_age
from ml.serving.errors import Overloaded

log = logging.getLogger("conveyor.features")
WARN_EVERY_S = 60.0


class FeatureStoreUnavailable(Overloaded):
    """The online store cannot be read and the policy is `reject`: 503 + Retry-After."""


def store_file(root: Path, key: str) -> Path:
    return Path(root) / ONLINE / f"{key}.sqlite"


def materialise(path: Path, key: str, spec: FeatureTableSpec, latest: pd.DataFrame, version: str) -> int:
    """Replace the online store at `path` with `latest` (one row per entity); returns the rows."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    features = list(spec.features)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".sqlite", dir=path.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        with con:
            con.execute("CREATE TABLE features (entity TEXT PRIMARY KEY, event_ts REAL NOT NULL, payload TEXT NOT NULL)")
            con.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            stamps = pd.to_datetime(latest[spec.timestamp]).astype("int64").to_numpy() / 1e9
            values = latest[features].to_numpy(dtype="float64")
            con.executemany("INSERT INTO features VALUES (?, ?, ?)", (
                (str(e), float(t), json.dumps(dict(zip(features, map(float, v)))))
                for e, t, v in zip(latest[spec.entity_key], stamps, values)))
            con.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("key", key), ("version", version), ("materialised_at", str(time.time())),
                ("definition", spec.model_dump_json())])
        con.close()
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # readers holding the old file keep reading it; new opens get this one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(latest)


@dataclass(frozen=True)
class _Store:
    """One opened store file and what it says about itself, read once when it is opened."""

    con: sqlite3.Connection
    ino: int
    version: str
    spec: FeatureTableSpec
    limits: dict[str, float]  # feature -> max age in seconds (`pit.max_age`)


class TableLookup:
    """Lookups of one table's features by entity key: a read-only connection per thread, reopened
    when a refresh has replaced the file (a new inode); the definition and max ages are parsed
    once per opened file, not per request."""

    def __init__(self, path: Path, key: str, features: list[str], spec: FeatureTableSpec | None):
        self.path, self.key, self.features = path, key, features
        self.spec = spec  # the deployed definition, then the last opened store's: the defaults when it is down
        self._local = threading.local()

    def _store(self) -> _Store:
        ino = os.stat(self.path).st_ino  # FileNotFoundError: the store is not there
        store: _Store | None = getattr(self._local, "store", None)
        if store is None or store.ino != ino:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
            spec = FeatureTableSpec.model_validate_json(meta["definition"])
            limits = {f: max_age(spec, f).total_seconds() for f in self.features}
            store = self._local.store = _Store(con, ino, meta.get("version", ""), spec, limits)
            self.spec = spec
        return store

    def fetch(self, rows: list[dict], now: float) -> tuple[dict[str, list[float]], list[str], str]:
        """({feature: values}, per-row status, version); raises OSError/sqlite3.Error when unreadable."""
        store = self._store()
        spec, limits = store.spec, store.limits
        entities = [str(r.get(spec.entity_key, "")) for r in rows]
        unique = list(dict.fromkeys(entities))
        marks = ",".join("?" * len(unique))
        found = {e: (ts, json.loads(p)) for e, ts, p in
                 store.con.execute(f"SELECT entity, event_ts, payload FROM features WHERE entity IN ({marks})", unique)}
        out = {f: [] for f in self.features}
        status = []
        for e in entities:
            hit = found.get(e)
            fresh = False
            for f in self.features:
                ok = hit is not None and now - hit[0] <= limits[f]
                out[f].append(hit[1][f] if ok else spec.features[f].default)
                fresh = fresh or ok
            status.append("hit" if fresh else ("stale" if hit is not None else "missing"))
        return out, status, store.version


class Lookups:
    """Every table one use case looks up; `augment` adds their features to a batch of rows."""

    def __init__(self, root: Path | None, wanted: dict[str, list[str]], definitions: dict[str, FeatureTableSpec | None],
                 policy: str = "defaults", clock=time.time):
        self.policy = policy
        self.clock = clock  # what "now" is for the max-age rule (tests and benchmarks set it)
        self.tables = {k: TableLookup(store_file(root, k) if root else Path("/nonexistent"), k, feats, definitions.get(k))
                       for k, feats in wanted.items()}
        self.unavailable_rows = 0
        self.missing_rows = 0
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}

    def augment(self, rows: list[dict]) -> pd.DataFrame:
        """`rows` as a frame with the looked-up features; each row dict gets `fs_<table>` (what happened)."""
        frame = pd.DataFrame(rows)
        now = self.clock()
        for key, table in self.tables.items():
            try:
                values, status, version = table.fetch(rows, now)
            except (OSError, sqlite3.Error, KeyError, ValueError) as exc:
                if self.policy == "reject":
                    raise FeatureStoreUnavailable(f"feature table {key!r}: online store unavailable ({exc})", 5) from None
                with self._lock:
                    self.unavailable_rows += len(rows)
                    loud = now - self._warned.get(key, 0.0) >= WARN_EVERY_S
                    if loud:
                        self._warned[key] = now
                if loud:  # once a minute per table, not per batch: the count is in `unavailable_rows`
                    log.warning("feature table %s: online store unavailable (%s); serving defaults (%d rows so far)",
                                key, exc, self.unavailable_rows)
                defaults = table.spec.defaults() if table.spec else {}
                values = {f: [defaults.get(f, np.nan)] * len(rows) for f in table.features}
                status, version = ["unavailable"] * len(rows), ""
            for f, vals in values.items():
                frame[f] = np.asarray(vals, dtype="float64")
            missing = sum(s != "hit" for s in status)
            if missing:
                with self._lock:
                    self.missing_rows += missing
            for r, s in zip(rows, status):
                r[f"fs_{key}"] = f"{s}@{version}" if version else s
        return frame

    def status(self) -> dict:
        return {"tables": sorted(self.tables), "policy": self.policy,
                "unavailable_rows": self.unavailable_rows, "default_rows": self.missing_rows}


_CACHE: dict[str, Lookups | None] = {}
_CACHE_LOCK = threading.Lock()


def for_use_case(uc) -> Lookups | None:
    """The serving process's lookups of use case `uc` (None: it looks nothing up). Built once per
    use case from its params.yaml `feature_tables` and the env's deployed definitions."""
    try:
        return _CACHE[uc.name]  # every request after the first: no lock
    except KeyError:
        pass
    with _CACHE_LOCK:
        if uc.name not in _CACHE:
            _CACHE[uc.name] = _build(uc)
        return _CACHE[uc.name]


def _build(uc) -> Lookups | None:
    from ml.features.lookups import declared, definitions_from

    wanted = declared(uc)
    if not wanted:
        return None
    root = serving_root()
    policy = settings.ONLINE_STORE_POLICY.get()
    return Lookups(root, {k: w.features for k, w in wanted.items()}, definitions_from(root, list(wanted)), policy)


def serving_root() -> Path | None:
    """The env storage root as the serving process sees it: $CONVEYOR_ONLINE_STORE_ROOT, else the
    local $CONVEYOR_STORAGE_URI, else the state volume ($CONVEYOR_STATE_DIR) on object storage."""
    from core.contract import local_path
    from core.storage import is_local

    given = settings.ONLINE_STORE_ROOT.get()
    if given is not None:
        return given
    uri = settings.STORAGE_URI.get()
    if uri and is_local(uri):
        return local_path(uri)
    return settings.STATE_DIR.get()


def augment(uc, rows: list[dict]) -> pd.DataFrame:
    """The serving engine's hook: rows as a frame, with the use case's looked-up features."""
    lookups = for_use_case(uc)
    return lookups.augment(rows) if lookups is not None else pd.DataFrame(rows)
