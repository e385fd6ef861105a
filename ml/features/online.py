"""Serving-time lookups from the online store, and the refresh's write into it.

The store itself is a backend (`ml.features.stores`): SQLite files under the env's storage by
default, PostgreSQL where the platform configures one (CONVEYOR_ONLINE_STORE_URL, kubernetes).
`materialise` replaces a table's values there as one atomic change (a reader sees the old values
or the new ones, never half of either).

`Lookups` is what the serving engine calls (`lookup`, one call per scored batch): for each
table the endpoint's use case looks up (params.yaml `feature_tables`), one indexed read by
entity key, then the same rules as the training join (`ml.features.pit`): a value older than
its max age as of now, or an unknown entity, is the declared default. Each row is annotated
with what happened (`fs_<table>`: hit / missing / stale / unavailable and the table version),
which the inference table logs next to the values used (`f_<feature>`); a `LookupCounts` the
caller passes (the engine: one per endpoint) counts the rows of each outcome for `/status`.

When a store cannot be read (never refreshed, file gone, corrupt, server down),
CONVEYOR_ONLINE_STORE_POLICY decides: `defaults` (the default) serves the declared defaults and
counts the rows `unavailable`; `reject` answers 503 (`FeatureStoreUnavailable`, retry later).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from core import settings
from core.feature_tables import FeatureTableSpec
from ml.features.pit import max_age
from ml.features.stores import OnlineStore, StoreDown, open_store
from ml.serving.errors import Overloaded

log = logging.getLogger("conveyor.features")
WARN_EVERY_S = 60.0
OUTCOMES = ("hit", "missing", "stale", "unavailable")
__all__ = ["FeatureStoreUnavailable", "LookupCounts", "Lookups", "lookup", "materialise"]


class FeatureStoreUnavailable(Overloaded):
    """The online store cannot be read and the policy is `reject`: 503 + Retry-After."""


def materialise(store: OnlineStore, key: str, spec: FeatureTableSpec, latest: pd.DataFrame, version: str) -> int:
    """Replace table `key` in `store` (`ml.features.stores.open_store`) with `latest`; returns the rows."""
    return store.write(key, spec, latest, version)


class LookupCounts:
    """Rows per table and outcome (hit / missing / stale / unavailable) since the process started;
    `defaults` is every row that got a declared default instead of a fresh value."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rows: dict[str, Counter] = {}

    def add(self, key: str, statuses: list[str]) -> None:
        counted = Counter(statuses)
        with self._lock:
            self._rows.setdefault(key, Counter()).update(counted)

    def snapshot(self) -> dict:
        with self._lock:
            tables = {k: {o: c.get(o, 0) for o in OUTCOMES} for k, c in sorted(self._rows.items())}
        for t in tables.values():
            t["defaults"] = t["missing"] + t["stale"] + t["unavailable"]
        return tables


class TableLookup:
    """Lookups of one table's features by entity key through its backend reader; the definition
    and max ages are parsed once per table version, not per request."""

    def __init__(self, store: OnlineStore, key: str, features: list[str], spec: FeatureTableSpec | None):
        self.key, self.features = key, features
        self.reader = store.table(key)
        self.spec = spec  # the deployed definition, then the store's own: the defaults when it is down
        self._known: tuple[str, FeatureTableSpec, dict[str, float]] | None = None  # version, spec, max ages

    def _learn(self, read) -> None:
        if read.spec is not None:
            limits = {f: max_age(read.spec, f).total_seconds() for f in self.features}
            self._known, self.spec = (read.version, read.spec, limits), read.spec

    def fetch(self, rows: list[dict], now: float) -> tuple[dict[str, list[float]], list[str], str]:
        """({feature: values}, per-row status, version); raises StoreDown when unreadable."""
        if self._known is None and self.spec is None:  # nothing deployed: the store's own definition names the key
            self._learn(self.reader.read([], None))
        entity_key = (self._known[1] if self._known else self.spec).entity_key
        entities = [str(r.get(entity_key, "")) for r in rows]
        read = self.reader.read(list(dict.fromkeys(entities)), self._known[0] if self._known else None)
        self._learn(read)
        _, spec, limits = self._known
        if spec.entity_key != entity_key:  # this refresh changed the entity key: read by the new one
            return self.fetch(rows, now)
        out = {f: [] for f in self.features}
        status = []
        for e in entities:
            hit = read.found.get(e)
            fresh = False
            for f in self.features:
                ok = hit is not None and now - hit[0] <= limits[f]
                out[f].append(hit[1][f] if ok else spec.features[f].default)
                fresh = fresh or ok
            status.append("hit" if fresh else ("stale" if hit is not None else "missing"))
        return out, status, read.version


class Lookups:
    """Every table one use case looks up; `augment` adds their features to a batch of rows."""

    def __init__(self, store: OnlineStore, wanted: dict[str, list[str]],
                 definitions: dict[str, FeatureTableSpec | None], policy: str = "defaults", clock=time.time):
        self.policy = policy
        self.clock = clock  # what "now" is for the max-age rule (tests and benchmarks set it)
        self.store = store
        self.tables = {k: TableLookup(self.store, k, feats, definitions.get(k)) for k, feats in wanted.items()}
        self.counts = LookupCounts()  # every caller's rows (the process); an endpoint passes its own too
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}

    def augment(self, rows: list[dict], counts: LookupCounts | None = None) -> pd.DataFrame:
        """`rows` as a frame with the looked-up features; each row dict gets `fs_<table>` (what happened)."""
        frame = pd.DataFrame(rows)
        for f, values in self.lookup(rows, counts).items():
            frame[f] = values
        return frame

    def lookup(self, rows: list[dict], counts: LookupCounts | None = None) -> dict[str, np.ndarray]:
        """The looked-up features of `rows` (float64 arrays by feature, no DataFrame: the serving
        engine's few-row path); each row dict gets `fs_<table>` (what happened)."""
        frame: dict[str, np.ndarray] = {}
        now = self.clock()
        for key, table in self.tables.items():
            try:
                values, status, version = table.fetch(rows, now)
            except StoreDown as exc:
                if self.policy == "reject":
                    raise FeatureStoreUnavailable(f"feature table {key!r}: online store unavailable ({exc})", 5) from None
                with self._lock:
                    loud = now - self._warned.get(key, 0.0) >= WARN_EVERY_S
                    if loud:
                        self._warned[key] = now
                if loud:  # once a minute per table, not per batch: the count is in the status
                    log.warning("feature table %s: online store unavailable (%s); serving defaults (%d rows so far)",
                                key, exc, self.counts.snapshot().get(key, {}).get("unavailable", 0) + len(rows))
                defaults = table.spec.defaults() if table.spec else {}
                values = {f: [defaults.get(f, np.nan)] * len(rows) for f in table.features}
                status, version = ["unavailable"] * len(rows), ""
            for f, vals in values.items():
                frame[f] = np.asarray(vals, dtype="float64")
            self.counts.add(key, status)
            if counts is not None:
                counts.add(key, status)
            for r, s in zip(rows, status):
                r[f"fs_{key}"] = f"{s}@{version}" if version else s
        return frame

    def status(self) -> dict:
        rows = self.counts.snapshot()
        return {"tables": sorted(self.tables), "policy": self.policy, "store": self.store.describe(),
                "unavailable_rows": sum(t["unavailable"] for t in rows.values()),
                "default_rows": sum(t["defaults"] for t in rows.values()), "rows": rows}


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
    store = open_store(root, settings.ONLINE_STORE_URL.get())
    return Lookups(store, {k: w.features for k, w in wanted.items()}, definitions_from(root, list(wanted)), policy)


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


def lookup(uc, rows: list[dict], counts: LookupCounts | None = None) -> dict[str, np.ndarray]:
    """The serving engine's hook: the use case's looked-up features of `rows` ({} when it looks
    nothing up); `counts` (the endpoint's) gets each row's outcome."""
    lookups = for_use_case(uc)
    return lookups.lookup(rows, counts) if lookups is not None else {}
