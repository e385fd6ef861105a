"""Online store backends: where the newest value of each entity lives for serving lookups.

One module per backend and one line in `BACKENDS` (the URL scheme it serves, then its class):

- `sqlite` (the default, every platform): one SQLite file per table under the env's storage
  root (`feature-store/online/<key>.sqlite`), swapped in by a rename;
- `postgresql` (kubernetes, where serving replicas and job pods share no file system): two
  tables in a PostgreSQL database, a refresh replacing a table's rows in one transaction.

`open_store(root, url)` picks one: `url` (CONVEYOR_ONLINE_STORE_URL, a SQLAlchemy URL naming no
password: libpq reads PGPASSWORD) when given, else SQLite under `root`. The same
`OnlineStore` interface serves both the refresh job (`write`) and serving (`table(key).read`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ml.features.stores.base import OnlineStore, StoreDown, TableRead, TableReader

BACKENDS: dict[str, str] = {
    "sqlite": "ml.features.stores.sqlite:SqliteStore",
    "postgresql": "ml.features.stores.postgres:PostgresStore",
}

__all__ = ["BACKENDS", "OnlineStore", "StoreDown", "TableRead", "TableReader", "open_store", "backend_of"]


def backend_of(url: str) -> str:
    """The BACKENDS name serving `url` (`postgresql+psycopg://…` → postgresql)."""
    from core.feature_tables import FeatureTableError

    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in BACKENDS or scheme == "sqlite":
        raise FeatureTableError(f"online store URL {url!r}: not one of {', '.join(b for b in BACKENDS if b != 'sqlite')} "
                                f"(unset it for the SQLite store under the env's storage)")
    return scheme


def open_store(root: Path | None, url: str | None = None) -> OnlineStore:
    """The online store of an env: `url`'s backend, else SQLite files under storage `root`."""
    name = backend_of(url) if url else "sqlite"
    module, cls = BACKENDS[name].split(":")
    kind = getattr(importlib.import_module(module), cls)
    return kind(url) if url else kind(root)
