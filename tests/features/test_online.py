"""The online store: latest values by entity key, declared defaults, and the store-down policy."""

from __future__ import annotations

import sqlite3
import threading

import pandas as pd
import pytest

from ml.features import online
from ml.features.compute import compute_table, latest_per_entity
from ml.features.stores import open_store
from ml.features.stores.sqlite import store_file
from tests.features.test_pit import SPEC, _txns

KEY = "customer_aggregates"
FEATURES = ["txn_count_24h", "mean_amount_30d"]


def _store(tmp_path, source=None, version="v1"):
    source = source if source is not None else _txns(("c1", "2026-01-01 10:00", 10.0), ("c1", "2026-01-01 12:00", 30.0),
                                                     ("c2", "2025-10-01 12:00", 99.0))
    latest = latest_per_entity(SPEC, compute_table(KEY, SPEC, source))
    online.materialise(open_store(tmp_path), KEY, SPEC, latest, version)
    now = pd.Timestamp("2026-01-01 13:00").timestamp()
    return online.Lookups(open_store(tmp_path), {KEY: FEATURES}, {KEY: SPEC}, clock=lambda: now)


def test_known_entities_get_their_latest_values_others_the_defaults(tmp_path):
    lookups = _store(tmp_path)
    rows = [{"customer_id": "c1"}, {"customer_id": "c2"}, {"customer_id": "c9"}]
    frame = lookups.augment(rows)
    assert list(frame["mean_amount_30d"]) == [20.0, 60.0, 60.0]  # c2's value is months old: the default
    assert list(frame["txn_count_24h"]) == [2.0, 0.0, 0.0]
    assert [r["fs_customer_aggregates"] for r in rows] == ["hit@v1", "stale@v1", "missing@v1"]
    assert lookups.status()["default_rows"] == 2


def test_a_refresh_swaps_the_whole_store_under_a_reader(tmp_path):
    lookups = _store(tmp_path)
    assert lookups.augment([{"customer_id": "c1"}])["mean_amount_30d"].iloc[0] == 20.0
    _store(tmp_path, _txns(("c1", "2026-01-01 12:30", 50.0)), version="v2")
    rows = [{"customer_id": "c1"}]
    assert lookups.augment(rows)["mean_amount_30d"].iloc[0] == 50.0 and rows[0]["fs_customer_aggregates"] == "hit@v2"
    errors = []

    def read():
        try:
            for _ in range(200):
                assert lookups.augment([{"customer_id": "c1"}])["mean_amount_30d"].iloc[0] in (50.0, 70.0)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(5):
        _store(tmp_path, _txns(("c1", "2026-01-01 12:30", 50.0 + 20.0 * (i % 2))), version=f"v{3 + i}")
    reader.join()
    assert not errors


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_store_that_is_down_serves_defaults_and_counts_them_or_rejects_by_policy(tmp_path, damage):
    lookups = _store(tmp_path)
    path = store_file(tmp_path, KEY)
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"not a database at all" * 100)
    rows = [{"customer_id": "c1"}, {"customer_id": "c2"}]
    frame = lookups.augment(rows)
    assert list(frame["mean_amount_30d"]) == [60.0, 60.0] and rows[0]["fs_customer_aggregates"] == "unavailable"
    assert lookups.status()["unavailable_rows"] == 2
    strict = online.Lookups(open_store(tmp_path), {KEY: FEATURES}, {KEY: SPEC}, policy="reject")
    with pytest.raises(online.FeatureStoreUnavailable) as err:
        strict.augment([{"customer_id": "c1"}])
    assert err.value.retry_after_s == 5 and "customer_aggregates" in str(err.value)


def test_the_store_file_is_owner_only_and_holds_its_definition(tmp_path):
    _store(tmp_path)
    path = store_file(tmp_path, KEY)
    assert path.stat().st_mode & 0o077 == 0
    with sqlite3.connect(path) as con:
        meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
    assert meta["version"] == "v1" and '"ttl":"30d"' in meta["definition"]
