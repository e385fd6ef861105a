"""A feature table's declaration and where its stores live: the contract between `bundle deploy`
(the `feature_tables` resource writes the definition into the env's storage) and the ML side
(the refresh job computes the table, training joins it, serving looks it up). Both import it
from here, so neither imports the other (as `core/endpoints.py` does for endpoints).

A feature table is keyed by an entity (`entity_key`, e.g. customer_id) and stamped with an
event time (`timestamp`): one row per source row, holding each declared aggregation over the
entity's source rows in the trailing `window` up to and including that row. `ttl` bounds
how old a value may be when it is used (as of a training row's timestamp, or now at
serving); an older value, or none, is the feature's declared `default`.

Env storage layout (under the env's storage root):
  feature-store/tables/<key>.json        the deployed definition (what serving reads)
  feature-store/online/<key>.sqlite      the online store: latest values per entity
  dvc-workspaces/feature-tables/         the offline store: a git+DVC workspace, one DVC
                                         version per refresh, lineage committed beside it
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.cron import cron_problem
from core.errors import ConveyorError

DEFINITIONS = "feature-store/tables"
ONLINE = "feature-store/online"
OFFLINE_WORKSPACE = "feature-tables"  # under <root>/dvc-workspaces/
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class FeatureTableError(ConveyorError, ValueError):
    """A feature table cannot be deployed, refreshed, joined or looked up as declared; the
    message names the table and what to do."""


def parse_duration(text: str) -> timedelta:
    """`"24h"`, `"30d"`, `"90m"`, `"2w"`, `"45s"` as a timedelta; ValueError otherwise."""
    match = _DURATION.match(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90m, 24h, 30d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Feature(_Strict):
    """One feature: an aggregation of a source column over the entity's trailing window."""

    aggregation: Literal["count", "sum", "mean", "min", "max"] = Field(
        description="count (of the entity's rows) · sum · mean · min · max (of `column`)")
    column: str | None = Field(None, description="the numeric source column aggregated (not for count)")
    window: str = Field(description="trailing window up to the row's event time, e.g. 24h, 30d")
    default: float = Field(description="the value when the entity has no row in the window, or its value is older than the ttl")
    description: str = ""

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _column(self) -> Feature:
        if self.aggregation == "count" and self.column is not None:
            raise ValueError("a count counts the entity's rows; it takes no `column`")
        if self.aggregation != "count" and not self.column:
            raise ValueError(f"a {self.aggregation} aggregates a `column`")
        return self


class Source(_Strict):
    use_case: str = Field(description="the use case whose env data the table is computed from (usecases/<name>)")
    table: Literal["silver"] = Field("silver", description="its medallion table: silver (typed, de-duplicated rows)")


class FeatureTableSpec(_Strict):
    """One entry of `resources.feature_tables` (resources/features.yml)."""

    name: str | None = None
    description: str = ""
    entity_key: str = Field(description="the source column identifying the entity, e.g. customer_id")
    timestamp: str = Field(description="the source's event-time column (a datetime column)")
    source: Source
    features: dict[str, Feature] = Field(min_length=1, description="feature name -> its aggregation")
    ttl: str = Field(description="a value older than this (as of its use) is replaced by the default, e.g. 30d")
    schedule: str | None = Field(None, description="cron of the refresh, e.g. '0 * * * *' (the refresh job runs on it)")
    refresh_job: str | None = Field(None, description="resource key of the job that refreshes the table")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = cron_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("features")
    @classmethod
    def _names(cls, value: dict[str, Feature]) -> dict[str, Feature]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"feature name {name!r}: lowercase letters, digits and '_'")
        return value

    @property
    def ttl_delta(self) -> timedelta:
        return parse_duration(self.ttl)

    def defaults(self) -> dict[str, float]:
        return {name: f.default for name, f in self.features.items()}

    def source_columns(self) -> list[tuple[tuple, str]]:
        """(path in the entry, source column) of every column the table reads."""
        out = [(("entity_key",), self.entity_key), (("timestamp",), self.timestamp)]
        out += [(("features", n, "column"), f.column) for n, f in self.features.items() if f.column]
        return out


def column_problems(spec: FeatureTableSpec, columns: dict[str, str]) -> list[tuple[tuple, str]]:
    """(path, message) for each column `spec` reads that the source (`{column: type}`) lacks or
    cannot serve: the entity key must exist, the timestamp be a datetime, aggregated columns numeric."""
    from core.errors import did_you_mean

    out = []
    for path, col in spec.source_columns():
        if col not in columns:
            out.append((path, f"unknown column {col!r} of use case {spec.source.use_case!r}"
                              f"{did_you_mean(col, list(columns))}"))
        elif path == ("timestamp",) and columns[col] != "datetime":
            out.append((path, f"timestamp {col!r} is a {columns[col]} column, not a datetime"))
        elif path[0] == "features" and columns[col] not in ("int", "float", "bool"):
            out.append((path, f"column {col!r} is a {columns[col]} column; {path[1]} aggregates numbers"))
    return out


def definition_key(key: str) -> str:
    return f"{DEFINITIONS}/{key}.json"


def dump_definition(key: str, spec: FeatureTableSpec) -> str:
    return json.dumps({"key": key, "spec": spec.model_dump(mode="json")}, indent=2, sort_keys=True)


def load_definition(key: str, text: str | None) -> FeatureTableSpec:
    if not text:
        raise FeatureTableError(f"feature table {key!r} is not deployed to this environment "
                                f"(declare it under resources.feature_tables and run `conveyor bundle deploy`)")
    return FeatureTableSpec.model_validate(json.loads(text)["spec"])
