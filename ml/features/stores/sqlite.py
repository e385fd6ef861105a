"""Backend `sqlite`: one file per table, `<env storage root>/feature-store/online/<key>.sqlite`.

A refresh writes a new file and renames it over the old one, so a reader sees the old store
or the new one, never half of either; readers hold one read-only connection per thread and
reopen when the file's inode changed. The file carries its definition and version.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from core.feature_tables import ONLINE, FeatureTableSpec
from core.files import private_dir
from ml.features.stores.base import OnlineStore, StoreDown, TableRead, TableReader, rows_of


def store_file(root: Path, key: str) -> Path:
    return Path(root) / ONLINE / f"{key}.sqlite"


class SqliteStore(OnlineStore):
    kind = "sqlite"

    def __init__(self, root: Path | None):
        self.root = Path(root) if root is not None else None

    def path(self, key: str) -> Path:
        if self.root is None:
            raise StoreDown("the serving process knows no env storage root (CONVEYOR_STORAGE_URI / ONLINE_STORE_ROOT)")
        return store_file(self.root, key)

    def describe(self) -> str:
        return f"sqlite under {self.root / ONLINE}" if self.root else "sqlite (no storage root)"

    def write(self, key: str, spec: FeatureTableSpec, latest: pd.DataFrame, version: str) -> int:
        path = self.path(key)
        private_dir(path.parent)  # every folder it creates owner-only (mkdir's mode skips parents, obeys umask)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".sqlite", dir=path.parent)
        os.close(fd)
        try:
            con = sqlite3.connect(tmp)
            with con:
                con.execute("CREATE TABLE features (entity TEXT PRIMARY KEY, event_ts REAL NOT NULL, payload TEXT NOT NULL)")
                con.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
                con.executemany("INSERT INTO features VALUES (?, ?, ?)", rows_of(spec, latest))
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

    def table(self, key: str) -> TableReader:
        return _SqliteReader(self, key)


class _SqliteReader(TableReader):
    def __init__(self, store: SqliteStore, key: str):
        self.store, self.key = store, key
        self._local = threading.local()  # (connection, inode, version, definition json) per thread

    def read(self, entities: list[str], known_version: str | None) -> TableRead:
        try:
            path = self.store.path(self.key)
            ino = os.stat(path).st_ino
            opened = getattr(self._local, "opened", None)
            if opened is None or opened[1] != ino:
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
                meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
                opened = self._local.opened = (con, ino, meta.get("version", ""), meta["definition"])
            con, _, version, definition = opened
            marks = ",".join("?" * len(entities))
            found = {e: (ts, json.loads(p)) for e, ts, p in
                     con.execute(f"SELECT entity, event_ts, payload FROM features WHERE entity IN ({marks})", entities)}
            spec = FeatureTableSpec.model_validate_json(definition) if version != known_version else None
        except (OSError, sqlite3.Error, KeyError, ValueError) as exc:
            raise StoreDown(f"{type(exc).__name__}: {exc}") from None
        return TableRead(version, spec, found)
