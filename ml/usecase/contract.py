"""The use-case contract: what `usecases/<name>/usecase.yml` may say (usecases/README.md is the reference).

A use case declares its dataset (columns with types, ranges, allowed values, nullability;
id, entity key, timestamp, label), where the rows come from, the feature function and the
columns it returns, the estimator factory, and what validation judges. Everything the
platform derives (GX suites, metrics, the gold table's layout, the split) is read from here.
These models check each value on its own; `ml.usecase.load` adds the checks across keys (a
label that is not a column) and outside the file (functions, files, params).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TASKS = ("binary_classification", "regression")
ColumnType = Literal["string", "int", "float", "bool", "category", "datetime"]
NUMERIC = ("int", "float")
REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ref(value: str | None) -> str | None:
    if value is not None and not REF_RE.match(value):
        raise ValueError(f"{value!r} must look like package.module:name")
    return value


class Column(_Strict):
    """One column: its type and what its values may be."""

    type: ColumnType
    description: str = ""
    nullable: bool = Field(False, description="nulls allowed (raw suite: at most data_validation.max_null_fraction otherwise)")
    min: float | None = None
    max: float | None = None
    strict_min: bool = Field(False, description="values must be > min (else >= min)")
    strict_max: bool = False
    values: list[str | int | float | bool] | None = Field(None, description="the allowed values")
    unique: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if (self.min is not None or self.max is not None) and self.type not in NUMERIC:
            raise ValueError(f"min/max apply to int and float columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.type == "category" and not self.values:
            raise ValueError("a category column lists its `values`")
        if self.values is not None and self.type in ("float", "datetime"):
            raise ValueError(f"`values` apply to category, string, int and bool columns, not {self.type}")
        return self


class Dataset(_Strict):
    columns: dict[str, Column] = Field(min_length=1, description="the raw (bronze) table, in order")
    id: str = Field(description="column identifying a row (and a request); unique")
    label: str = Field(description="column the model predicts")
    entity_key: str | None = Field(None, description="column identifying the entity a row is about (sticky routing, joins)")
    timestamp: str | None = Field(None, description="event time; without it the held-out split is a seeded random one")


class Window(_Strict):
    """Which rows one ingest snapshots: the last `days` of event time (ml/data/sources/README.md)."""

    days: float = Field(gt=0, description="length of the window, in days of event time")
    column: str | None = Field(None, description="the event-time column (default: dataset.timestamp)")
    anchor: Literal["latest", "now"] = Field(
        "latest", description="where the window ends: the newest event in the source (a rerun on unchanged data "
                              "snapshots the same rows), or the time of the run")


class SourceSpec(_Strict):
    """One place raw rows come from; which keys a kind needs is checked by the kind
    (`ml/data/sources/<kind>.py`), so that an unknown or missing key is one located message."""

    kind: str = Field(description="generator | file | partitions | sql (the registry in ml/data/sources/__init__.py)")
    function: str | None = Field(None, description="generator: package.module:function(rows=, seed=, **knobs) -> DataFrame")
    params: str | None = Field(None, description="generator: package.module:Model typing params.yaml `data` (a DataParams)")
    path: str | None = Field(None, description="file: a parquet/csv file; partitions: a directory or glob of them "
                                               "(relative to the project: in a job run its deployed code; absolute; s3://…; or {storage}/… on the env's storage)")
    url: str | None = Field(None, description="sql: a SQLAlchemy URL without a password (the driver finds it: PGPASSWORD, ~/.pgpass)")
    query: str | None = Field(None, description="sql: the SELECT returning the raw rows")
    window: Window | None = Field(None, description="file, partitions, sql: snapshot only the last N days of events")

    _refs = field_validator("function", "params")(_ref)


class Source(SourceSpec):
    """Where raw rows come from when the run does not name a file (`data.source: generate`);
    `targets` gives a bundle target (dev, staging, prod) a source of its own."""

    targets: dict[str, SourceSpec] = Field(default_factory=dict, description="bundle target -> its own source")

    def for_target(self, target: str | None) -> SourceSpec:
        """The source of bundle target `target`: its own entry under `targets`, else this one."""
        if target and target in self.targets:
            return self.targets[target]
        return SourceSpec.model_validate(self.model_dump(exclude={"targets"}))


class Features(_Strict):
    function: str = Field(description="package.module:function(raw DataFrame) -> DataFrame of the feature columns")
    array_function: str | None = Field(None, description=(
        "optional package.module:function(dict of raw column -> numpy array) -> dict of feature column -> numpy "
        "array: the same features as `function` without pandas, for serving a few rows at a time (the endpoint "
        "checks it gives identical features to `function` before using it)"))
    request: list[str] = Field(min_length=1, description="the raw columns a serving request carries")
    columns: dict[str, Column] = Field(min_length=1, description="the model's input columns, in order")

    _refs = field_validator("function", "array_function")(_ref)


class Model(_Strict):
    factory: str = Field(description="package.module:function(train params, feature columns) -> scikit-learn estimator")
    params: str | None = Field(None, description="package.module:Model typing params.yaml `train` (a TrainParams)")
    registered_name: str | None = Field(None, description="registered model name before -<target> (default: the use case name)")
    experiment: str | None = Field(None, description="MLflow experiment of manual runs (default: the use case name)")
    score_column: str | None = Field(None, description="batch scoring: column of the model's score (classification: probability)")
    prediction_column: str | None = Field(None, description="batch scoring: column of the prediction (default: the label's name)")

    _refs = field_validator("factory", "params")(_ref)


class Validation(_Strict):
    """What validate_model judges; the thresholds themselves are knobs in params.yaml."""

    slice_column: str | None = Field(None, description="per-value gates (params: model_validation.min_slice_<metric>)")
    compared: list[str] | None = Field(None, description="metrics that may not regress against the champion (default: by task type)")
    required_tags: list[str] = Field(default_factory=list, description="compliance: tags every model version carries")


class UseCaseSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="the folder name under usecases/")
    description: str = ""
    task: Literal["binary_classification", "regression"]
    dataset: Dataset
    source: Source
    features: Features
    model: Model
    validation: Validation = Validation()
    expectations: str | None = Field(None, description="package.module:function(kind, params) -> extra GX expectations")

    _refs = field_validator("expectations")(_ref)
