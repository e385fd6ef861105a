"""The networked online store (PostgreSQL) behind the same lookups, against a real server (`pg`, conftest):
the same values and defaults as SQLite, a refresh swapped in as one transaction under readers,
the password only from PGPASSWORD, and a server that is down served by policy (never a 5xx)."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from core.feature_tables import FeatureTableError
from ml.features import online
from ml.features.compute import compute_table, latest_per_entity
from ml.features.stores import open_store
from tests.features.test_pit import SPEC, _txns
from tests.ml import pgserver

KEY = "customer_aggregates"
FEATURES = ["txn_count_24h", "mean_amount_30d"]
NOW = pd.Timestamp("2026-01-01 13:00").timestamp()


@pytest.fixture
def store(pg, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", pgserver.PASSWORD)  # the URL names no password: libpq reads it
    s = open_store(None, pg.url)
    yield s
    s.close()


def _write(store, source, version):
    return online.materialise(store, KEY, SPEC, latest_per_entity(SPEC, compute_table(KEY, SPEC, source)), version)


BASE = (("c1", "2026-01-01 10:00", 10.0), ("c1", "2026-01-01 12:00", 30.0), ("c2", "2025-10-01 12:00", 99.0))


def test_postgres_serves_the_same_values_defaults_and_statuses_as_sqlite(store, tmp_path):
    assert _write(store, _txns(*BASE), "v1") == 2
    _write(open_store(tmp_path), _txns(*BASE), "v1")
    got = {}
    for name, backend in (("postgresql", store), ("sqlite", open_store(tmp_path))):
        lookups = online.Lookups(backend, {KEY: FEATURES}, {KEY: SPEC}, clock=lambda: NOW)
        rows = [{"customer_id": "c1"}, {"customer_id": "c2"}, {"customer_id": "c9"}]
        frame = lookups.augment(rows)
        got[name] = (frame[FEATURES].to_dict("list"), [r["fs_customer_aggregates"] for r in rows])
        assert lookups.status()["rows"][KEY] == {"hit": 1, "missing": 1, "stale": 1, "unavailable": 0, "defaults": 2}
    assert got["postgresql"] == got["sqlite"] == (
        {"txn_count_24h": [2.0, 0.0, 0.0], "mean_amount_30d": [20.0, 60.0, 60.0]}, ["hit@v1", "stale@v1", "missing@v1"])
    assert store.describe() == f"postgresql postgresql+psycopg://ingest@127.0.0.1:{store.url.port}/sales"


def test_a_refresh_is_one_transaction_readers_never_see_half_of_it(store):
    _write(store, _txns(("c1", "2026-01-01 12:30", 50.0)), "v0")
    lookups = online.Lookups(store, {KEY: FEATURES}, {KEY: SPEC}, clock=lambda: NOW)
    many = [f"x{i}" for i in range(1000)]  # a table big enough that a non-atomic swap would show
    seen, errors, done = set(), [], threading.Event()

    def read():
        try:
            while not done.is_set():
                rows = [{"customer_id": "c1"}, {"customer_id": "x999"}]
                frame = lookups.augment(rows)
                version = rows[0]["fs_customer_aggregates"].split("@")[1]
                seen.add(version)
                # each version's values and statuses, never a mix of two refreshes
                even = int(version[1:]) % 2 == 0
                assert frame["mean_amount_30d"].iloc[0] == (50.0 if even else 70.0), (version, frame)
                assert rows[1]["fs_customer_aggregates"] == (f"missing@{version}" if even else f"hit@{version}")
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    for i in range(1, 5):
        txns = [("c1", "2026-01-01 12:30", 50.0 + 20.0 * (i % 2))]
        if i % 2:
            txns += [(c, "2026-01-01 12:00", 1.0) for c in many]
        _write(store, _txns(*txns), f"v{i}")
    done.set()
    for r in readers:
        r.join()
    assert not errors, errors[0]
    assert len(seen) >= 2  # the readers did run across refreshes


def test_the_url_never_carries_the_password_and_a_wrong_one_is_one_line(pg, monkeypatch):
    with pytest.raises(FeatureTableError, match="carries a password"):
        open_store(None, pg.url.replace("ingest@", "ingest:hunter2@"))
    with pytest.raises(FeatureTableError, match="not one of postgresql"):
        open_store(None, "mysql://ingest@db/x")
    monkeypatch.setenv("PGPASSWORD", "wrong")
    bad = open_store(None, pg.url)
    with pytest.raises(FeatureTableError) as err:
        _write(bad, _txns(*BASE), "v1")
    assert 'password authentication failed for user "ingest"' in str(err.value) and "\n" not in str(err.value)


def test_a_server_that_is_down_serves_defaults_counted_or_503_by_policy(monkeypatch):
    from tests.ports import free_port

    monkeypatch.setenv("PGPASSWORD", "x")
    url = f"postgresql+psycopg://ingest@127.0.0.1:{free_port()}/sales"
    lookups = online.Lookups(open_store(None, url), {KEY: FEATURES}, {KEY: SPEC}, clock=lambda: NOW)
    rows = [{"customer_id": "c1"}, {"customer_id": "c2"}]
    counts = online.LookupCounts()
    frame = lookups.augment(rows, counts)
    assert list(frame["mean_amount_30d"]) == [60.0, 60.0] and rows[0]["fs_customer_aggregates"] == "unavailable"
    assert counts.snapshot() == {KEY: {"hit": 0, "missing": 0, "stale": 0, "unavailable": 2, "defaults": 2}}
    strict = online.Lookups(open_store(None, url), {KEY: FEATURES}, {KEY: SPEC}, policy="reject")
    with pytest.raises(online.FeatureStoreUnavailable) as err:
        strict.augment([{"customer_id": "c1"}])
    assert err.value.retry_after_s == 5 and "Connection refused" in str(err.value) and "\n" not in str(err.value)


def test_a_table_never_materialised_in_the_database_is_unavailable(store):
    lookups = online.Lookups(store, {"never_refreshed": FEATURES}, {"never_refreshed": SPEC}, clock=lambda: NOW)
    rows = [{"customer_id": "c1"}]
    lookups.augment(rows)
    assert rows[0]["fs_never_refreshed"] == "unavailable"
