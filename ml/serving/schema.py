"""The request/response contract of an endpoint, derived from its use case's declaration.

`ServingSchema.of(use_case)` builds (pydantic `create_model`) the models every route of that
endpoint validates with, so each endpoint's OpenAPI documents its own fields:

- a request row: the use case's id column (optional: generated when absent; it doubles as
  the request id), its entity key (required: the sticky routing key of A/B and canary
  splits), then each `features.request` column with its declared type, bounds
  (`min`/`max`, `strict_min`/`strict_max` → exclusive), allowed `values` (an enum) and
  nullability. Strict types, unknown fields refused: a quoted number is a 4xx, not a
  silent cast. Datetimes are parsed from ISO 8601 strings only and taken as wall-clock time.
- every value that reaches feature code is bounded, so no request can make the model or the
  feature function raise: floats are finite (NaN/Infinity refused as such) and, where the
  use case declares no range, within ±`MAGNITUDE`; ints without a range within ±2^53 (what
  JSON carries exactly); datetimes between `EARLIEST` and `LATEST` (pandas' nanosecond
  range is 1677–2262; a year-9999 timestamp is a 422, not a 500).
- a response row, by task type: classification → the label (`score >= threshold`) and the
  score column (the probability); regression → the prediction column (the predicted value);
  both with `model_version` and `served_by`.

The schema is code (it moves through CI with the use case); models must accept the use
case's feature columns as `UseCase.build_features` returns them from these rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from ml.usecase.contract import Column
from ml.usecase.usecase import UseCase

STRING_MAX = 128
MAGNITUDE = 1e12  # bound of a float column that declares no range
INT_MAGNITUDE = 2**53
EARLIEST, LATEST = datetime(1900, 1, 1), datetime(2200, 1, 1)  # inside pandas' datetime64[ns] range


_DATE = (r"(?:(?:19\d\d|2[01]\d\d)-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
         r"|02-(?:0[1-9]|1\d|2[0-8]))|(?:(?:19|20|21)(?:0[48]|[2468][048]|[13579][26])|2000)-02-29)")  # leap days
# The accepted times, documented as the field's `pattern` (JSON Schema has no bound for a date-time):
# RFC 3339 from 1900 to 2199, so the OpenAPI says exactly what the endpoint takes.
TIME_PATTERN = (r"^" + _DATE + r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
                r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?$")
_TIME = re.compile(TIME_PATTERN)


def _iso_only(value: Any) -> Any:
    """Only ISO 8601 strings of `TIME_PATTERN` are times (pydantic would also take a number as a Unix
    time, or a bare date)."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError("expected an ISO 8601 time string like 2026-03-01T12:00:00, from 1900 to 2199")
    return value


def _whole_number(value: Any) -> Any:
    """JSON has one number type: `44.0` is the integer 44 (as JSON Schema says), `44.5` is not."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= INT_MAGNITUDE:
        return int(value)
    return value


def _wall_clock(value: datetime | None) -> datetime | None:
    """Features use the local wall-clock time, as in training data; an offset is dropped so rows
    with and without one can be scored in the same batch. Bounded so feature code never overflows."""
    if value is None:
        return None
    value = value.replace(tzinfo=None)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"time must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}")
    return value


def _annotation(col: Column) -> tuple[Any, dict]:
    """(type, Field kwargs) of one declared column."""
    kw: dict = {"description": col.description or None}
    if col.values is not None and col.type in ("string", "category", "int", "bool"):
        kind: Any = Literal[tuple(col.values)]
    elif col.type in ("string", "category"):
        kind, kw = str, {**kw, "min_length": 1, "max_length": STRING_MAX}
    elif col.type == "datetime":
        kind, kw = datetime, {**kw, "strict": False, "description": col.description or
                              f"ISO 8601 time, from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}",
                              "json_schema_extra": _time_schema}
    else:
        kind = {"int": int, "float": float, "bool": bool}[col.type]
    if col.type == "float":
        kw["allow_inf_nan"] = False
    if col.type in ("int", "float") and col.values is None:
        bound = MAGNITUDE if col.type == "float" else INT_MAGNITUDE
        low = col.min if col.min is not None else -bound
        high = col.max if col.max is not None else bound
        kw["gt" if col.strict_min and col.min is not None else "ge"] = low
        kw["lt" if col.strict_max and col.max is not None else "le"] = high
    return kind, kw


def _time_schema(schema: dict) -> None:
    """A time is documented by the pattern it must match (a `format: date-time` allows years 1-9999)."""
    schema.pop("format", None)
    schema["pattern"] = TIME_PATTERN


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[_\-]+", name) if p)


@dataclass(frozen=True)
class ServingSchema:
    """One use case's serving models and the names of the fields the engine fills in."""

    use_case: UseCase
    request: type[BaseModel]  # one row
    response: type[BaseModel]  # one scored row
    body: type[BaseModel]  # `{"rows": [row, ...]}`

    @property
    def id_column(self) -> str:
        return self.use_case.id_column

    @property
    def entity_key(self) -> str | None:
        return self.use_case.spec.dataset.entity_key

    @property
    def columns(self) -> list[str]:
        """The request row's fields, in order."""
        return list(self.request.model_fields)

    @classmethod
    def of(cls, uc: UseCase) -> ServingSchema:
        camel = _camel(uc.name)
        declared = uc.spec.dataset.columns
        fields: dict[str, Any] = {uc.id_column: (str | None, Field(None, min_length=1, max_length=STRING_MAX,
                                                                   description="request id (generated if absent)"))}
        key = uc.spec.dataset.entity_key
        if key is not None and key != uc.id_column:
            kind, kw = _annotation(declared[key])
            if kind is str:
                kw["description"] = kw.get("description") or "sticky routing key (A/B and canary splits)"
            fields[key] = (kind, Field(**kw))
        validators = {}
        for name in uc.request_columns:
            if name in fields:
                continue
            col = declared[name]
            kind, kw = _annotation(col)
            fields[name] = (kind | None, Field(None, **kw)) if col.nullable else (kind, Field(**kw))
            if col.type == "int":
                validators[f"_whole_number_{name}"] = field_validator(name, mode="before")(_whole_number)
            if col.type == "datetime":
                validators[f"_iso_only_{name}"] = field_validator(name, mode="before")(_iso_only)
                validators[f"_wall_clock_{name}"] = field_validator(name)(_wall_clock)
        request = create_model(f"{camel}Request", __config__=ConfigDict(strict=True, extra="forbid"),
                               __doc__=f"One row to score with the {uc.name} use case's model.",
                               __validators__=validators, **fields)
        request.__module__ = __name__
        if uc.is_classification:
            out = {uc.label: (bool, Field(description="score >= the model's threshold")),
                   uc.score_column: (float, Field(description="probability of the positive class"))}
        else:
            out = {uc.prediction_column: (float, Field(description=f"predicted {uc.label}"))}
        response = create_model(f"{camel}Prediction", __doc__=f"The {uc.name} model's answer for one row.",
                                **{uc.id_column: (str, ...), **out,
                                   "model_version": (str, ...), "served_by": (str, ...)})
        response.__module__ = __name__
        body = create_model(f"{camel}PredictBody", __config__=ConfigDict(extra="forbid"),
                            rows=(list[request], Field(description="one or many rows")))
        body.__module__ = __name__
        return cls(use_case=uc, request=request, response=response, body=body)

    def answer(self, request_id: str, score: float, threshold: float, version: str, served_by: str) -> dict:
        """The response row (a dict in the response model's field order) for one scored row."""
        uc = self.use_case
        if uc.is_classification:
            out = {uc.label: bool(score >= threshold), uc.score_column: float(score)}
        else:
            out = {uc.prediction_column: float(score)}
        return {uc.id_column: request_id, **out, "model_version": version, "served_by": served_by}

    def logged(self, answer: dict) -> dict:
        """The inference table's `prediction` / `probability` of a response row."""
        uc = self.use_case
        if uc.is_classification:
            return {"prediction": int(answer[uc.label]), "probability": answer[uc.score_column]}
        return {"prediction": answer[uc.prediction_column], "probability": None}


_CACHE: dict[str, ServingSchema] = {}


def for_use_case(name: str) -> ServingSchema:
    """The serving schema of use case `name` (read once per process)."""
    if name not in _CACHE:
        from ml.usecase import load_use_case

        _CACHE[name] = ServingSchema.of(load_use_case(name))
    return _CACHE[name]
