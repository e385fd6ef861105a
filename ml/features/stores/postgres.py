"""Backend `postgresql`: the online store as two tables of a PostgreSQL database (SQLAlchemy 2 +
psycopg 3), for platforms whose serving replicas and job pods share no file system (kubernetes).

    conveyor_online_tables    (table_key PK, version, definition, materialised_at)
    conveyor_online_features  (table_key, entity, event_ts, payload JSON text; PK table_key, entity)

A refresh (SQLAlchemy) replaces a table's rows and its version in ONE transaction (after taking
the table's advisory lock, so two refreshes never interleave): a lookup sees the old values or
the new ones. A lookup is one statement (the version joined to the entities' rows), so it
reads one snapshot even while a refresh commits. Lookups run on psycopg directly, a prepared
statement on a few pooled autocommit connections: through SQLAlchemy's engine the same query
cost ~2.5 ms p50 more per request (pool checkout, events, reset), psycopg ~0.3 ms.

The URL names host, port, database and user, never a password (a stack's config and the pod
spec are readable): libpq reads PGPASSWORD, which the platform sets from a Secret. Errors are
one line naming the server with the password hidden.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import zlib
from contextlib import contextmanager

import pandas as pd

from core.feature_tables import FeatureTableError, FeatureTableSpec
from ml.data.sources.sql import _first_line  # the SQL source's: a driver error as one line
from ml.features.stores.base import OnlineStore, StoreDown, TableRead, TableReader, rows_of

CONNECT_TIMEOUT_S = 3  # a lookup must not hang a request on an unreachable server
REFRESH_CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_MS = 2000
INSERT_CHUNK = 5000
TABLES = "conveyor_online_tables"
FEATURES = "conveyor_online_features"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLES} (table_key TEXT PRIMARY KEY, version TEXT NOT NULL, "
    "definition TEXT NOT NULL, materialised_at DOUBLE PRECISION NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {FEATURES} (table_key TEXT NOT NULL, entity TEXT NOT NULL, "
    "event_ts DOUBLE PRECISION NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (table_key, entity))",
)
READERS = 4  # lookup connections per serving process and store (a worker's threads share them)
# one statement: the table's version, and the rows of the entities asked for (none: one row of NULLs)
_LOOKUP = (f"SELECT t.version, f.entity, f.event_ts, f.payload{{definition}} FROM {TABLES} t "
           f"LEFT JOIN {FEATURES} f ON f.table_key = t.table_key AND f.entity = ANY(%s) WHERE t.table_key = %s")
_LOOKUPS = {False: _LOOKUP.format(definition=""), True: _LOOKUP.format(definition=", t.definition")}  # built once


class PostgresStore(OnlineStore):
    kind = "postgresql"

    def __init__(self, url: str):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self.url = make_url(url)
        except ArgumentError as exc:
            raise FeatureTableError(f"online store URL {url!r} is not a SQLAlchemy URL: {exc}") from None
        if self.url.password:
            raise FeatureTableError("the online store URL carries a password: drop it from the URL and give it "
                                    "to the driver (PGPASSWORD, from a Secret on kubernetes)")
        self._engine = None
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue = queue.LifoQueue()  # open lookup connections, the newest first
        self._slots = threading.BoundedSemaphore(READERS)

    def describe(self) -> str:
        return f"postgresql {self.url.render_as_string(hide_password=True)}"

    def engine(self):
        """The refresh's SQLAlchemy engine, created on first use (no statement timeout: replacing a
        big table takes what it takes; lookups use `reader_connection`, which has one)."""
        with self._lock:
            if self._engine is None:
                from sqlalchemy import create_engine

                self._engine = create_engine(self.url, pool_size=1, max_overflow=2,
                                             connect_args={"connect_timeout": REFRESH_CONNECT_TIMEOUT_S})
            return self._engine

    @contextmanager
    def reader_connection(self):
        """A psycopg connection (autocommit) of the lookup pool: returned after use, closed on error
        (the next lookup reconnects). At most READERS at once; a caller waits for one that long."""
        import psycopg

        if not self._slots.acquire(timeout=CONNECT_TIMEOUT_S):
            raise StoreDown(f"{self.describe()}: every lookup connection is busy")
        try:
            try:
                con = self._idle.get_nowait()
            except queue.Empty:
                u = self.url
                args = {k: v for k, v in {"host": u.host, "port": u.port, "user": u.username, "dbname": u.database}.items()
                        if v is not None}
                con = psycopg.connect(**args, **{k: str(v) for k, v in u.query.items()}, autocommit=True,
                                      connect_timeout=CONNECT_TIMEOUT_S, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
            try:
                yield con
            except BaseException:
                con.close()
                raise
            self._idle.put(con)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the lookup connections and the refresh engine."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        if self._engine is not None:
            self._engine.dispose()

    def write(self, key: str, spec: FeatureTableSpec, latest: pd.DataFrame, version: str) -> int:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        rows = [{"k": key, "e": e, "t": t, "p": p} for e, t, p in rows_of(spec, latest)]
        try:
            with self.engine().begin() as conn:  # one transaction: every row and the version, or nothing
                for stmt in _SCHEMA:
                    conn.execute(text(stmt))
                conn.execute(text("SELECT pg_advisory_xact_lock(:h)"), {"h": zlib.crc32(f"online:{key}".encode())})
                conn.execute(text(f"DELETE FROM {FEATURES} WHERE table_key = :k"), {"k": key})
                insert = text(f"INSERT INTO {FEATURES} (table_key, entity, event_ts, payload) VALUES (:k, :e, :t, :p)")
                for i in range(0, len(rows), INSERT_CHUNK):
                    conn.execute(insert, rows[i:i + INSERT_CHUNK])
                conn.execute(text(
                    f"INSERT INTO {TABLES} (table_key, version, definition, materialised_at) VALUES (:k, :v, :d, :m) "
                    "ON CONFLICT (table_key) DO UPDATE SET version = EXCLUDED.version, "
                    "definition = EXCLUDED.definition, materialised_at = EXCLUDED.materialised_at"),
                    {"k": key, "v": version, "d": spec.model_dump_json(), "m": time.time()})
        except SQLAlchemyError as exc:
            raise FeatureTableError(f"online store {self.describe()}: {_first_line(exc)}") from None
        return len(rows)

    def table(self, key: str) -> TableReader:
        return _PostgresReader(self, key)


class _PostgresReader(TableReader):
    def __init__(self, store: PostgresStore, key: str):
        self.store, self.key = store, key

    def _query(self, entities: list[str], with_definition: bool):
        with self.store.reader_connection() as con:  # autocommit: a lone SELECT needs no transaction
            return con.execute(_LOOKUPS[with_definition], (entities, self.key), prepare=True).fetchall()

    def read(self, entities: list[str], known_version: str | None) -> TableRead:
        import psycopg

        try:
            rows = self._query(entities, known_version is None)
            if rows and known_version is not None and rows[0][0] != known_version:
                rows = self._query(entities, True)  # a refresh happened: its definition, from the same snapshot
        except (psycopg.Error, OSError) as exc:
            raise StoreDown(f"{self.store.describe()}: {_first_line(exc)}") from None
        if not rows:
            raise StoreDown(f"table {self.key!r} was never materialised in {self.store.describe()}")
        version = rows[0][0]
        spec = None
        if version != known_version:
            try:
                spec = FeatureTableSpec.model_validate_json(rows[0][4])
            except (ValueError, IndexError) as exc:
                raise StoreDown(f"table {self.key!r} in {self.store.describe()}: unreadable definition ({exc})") from None
        found = {r[1]: (r[2], json.loads(r[3])) for r in rows if r[1] is not None}
        return TableRead(version, spec, found)
