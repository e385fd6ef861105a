"""The online store interface every backend implements (`ml.features.stores`)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pandas as pd

from core.feature_tables import FeatureTableSpec


class StoreDown(Exception):
    """The store cannot be read (not there, never materialised, unreachable, corrupt): the
    serving policy decides what happens (`ml.features.online`). The message names the store
    and never carries a password."""


@dataclass(frozen=True)
class TableRead:
    """What one lookup read, from one consistent state of the store (never half a refresh)."""

    version: str
    spec: FeatureTableSpec | None  # None: the definition did not change since the reader's last read
    found: dict[str, tuple[float, dict[str, float]]]  # entity -> (event time in epoch s, {feature: value})


class TableReader(ABC):
    """Reads of one table, safe to call from many serving threads at once."""

    @abstractmethod
    def read(self, entities: list[str], known_version: str | None) -> TableRead:
        """The stored values of `entities` (unknown ones are absent) and the table's version;
        `spec` is set when the version is not `known_version`. Raises StoreDown."""


class OnlineStore(ABC):
    kind: str

    @abstractmethod
    def write(self, key: str, spec: FeatureTableSpec, latest: pd.DataFrame, version: str) -> int:
        """Replace table `key` with `latest` (one row per entity) as one atomic change: a reader
        sees the old values or the new ones. Returns the rows written."""

    @abstractmethod
    def table(self, key: str) -> TableReader:
        """A reader of table `key` (opening nothing yet: a store that is down fails on `read`)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages (no secret)."""


def rows_of(spec: FeatureTableSpec, latest: pd.DataFrame) -> list[tuple[str, float, str]]:
    """(entity, event time in epoch seconds, JSON {feature: value}) of each entity's newest row."""
    features = list(spec.features)
    # as nanoseconds whatever unit the frame holds (parquet may give microseconds)
    stamps = pd.to_datetime(latest[spec.timestamp]).dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    values = latest[features].to_numpy(dtype="float64")
    return [(str(e), float(t), json.dumps(dict(zip(features, map(float, v)))))
            for e, t, v in zip(latest[spec.entity_key], stamps, values)]
