"""Typed view of a use case's `params.yaml`: one pydantic object per pipeline step.

Every knob a data scientist may turn lives in `usecases/<name>/params.yaml` (DVC tracks the
`data` section as stage params); tasks accept `--set section.key=value` overrides so a job
run can change one value without editing the file. These models hold the generic knobs; a
use case types its own (`ml.usecase.UseCase.load_params`). In a job run the file read is the
deployed code's copy (the use case folder of the imported `usecases` package): editing a
checkout changes an environment's runs only once it is deployed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConveyorError

_GATE_RE = re.compile(r"^(min|max)_(slice_)?[a-z][a-z0-9_]*$")


class DataParams(BaseModel):
    """Where the raw rows come from and how many are kept. A use case's source may add its own
    knobs (usecase.yml `source.params` names a subclass); extra keys are passed to its generator."""

    model_config = ConfigDict(extra="allow")

    rows: int | None = Field(None, ge=10, description="rows to generate (generator sources)")
    seed: int = 42
    subset: float = Field(1.0, gt=0.0, le=1.0, description="fraction of the rows to keep (integration runs on a data subset)")
    source: str = Field("generate", description="`generate` (the use case's declared source), or a parquet/csv file of raw rows to ingest")


class DataValidationParams(BaseModel):
    min_rows: int = 500
    max_rows: int = 100_000_000
    min_label_rate: float = Field(0.002, description="binary classification: lowest share of positive labels")
    max_label_rate: float = 0.20
    max_null_fraction: float = 0.0


class SplitParams(BaseModel):
    test_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="share held out: the most recent rows, or a seeded random share when the dataset declares no timestamp")
    seed: int = Field(42, description="seed of the random split (datasets without a timestamp)")


class TrainParams(BaseModel):
    """The generic training knobs. A use case's model adds its own (usecase.yml `model.params`
    names a subclass); extra keys are kept and given to its estimator factory."""

    model_config = ConfigDict(extra="allow")

    random_state: int = 7
    threshold: float = Field(0.3, gt=0.0, lt=1.0, description="binary classification: probability above which a row is positive")
    importance_sample: int = Field(3000, description="rows used for permutation feature importance")
    train_metrics_sample: int = Field(500_000, ge=0, description="training rows the train_* metrics (the overfitting gap) "
                                      "are computed on: a seeded sample, since scoring all of them cost as much as the fit; 0: all")


class ModelValidationParams(BaseModel):
    """Gates on held-out data. Metric gates are extra keys `min_<metric>` / `max_<metric>` (and
    `min_slice_<metric>` per slice), for the metrics of the use case's task type."""

    model_config = ConfigDict(extra="allow")

    max_relative_regression: float = Field(0.02, description="allowed relative drop vs champion on the same held-out data")
    min_slice_positives: int = 10
    min_held_out_positives: int = Field(10, description="binary classification: below this many positives in held-out data, metric gates are reported as not judged")

    @model_validator(mode="after")
    def _gates_are_numbers(self) -> ModelValidationParams:
        for key, value in (self.model_extra or {}).items():
            if not _GATE_RE.match(key):
                raise ValueError(f"unknown key {key!r} (metric gates are min_<metric>, max_<metric>, min_slice_<metric>)")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number")
        return self

    def gates(self, slices: bool = False) -> dict[str, float]:
        """`{min_<metric>|max_<metric>: threshold}`: the held-out gates, or the per-slice ones."""
        out = {}
        for key, value in (self.model_extra or {}).items():
            is_slice = key.split("_", 2)[1] == "slice"
            if is_slice == slices:
                out[key.replace("_slice_", "_", 1) if slices else key] = float(value)
        return out


class DeploymentParams(BaseModel):
    """Champion vs challenger. Unknown keys are ignored, so old params files that still set
    `bento_service` (no longer used: the env endpoint serves every use case) keep loading."""

    primary_metric: str | None = Field(None, description="champion vs challenger (default: the task type's primary metric)")
    baseline: dict[str, float] = Field(default_factory=dict, description="what the first model must meet, metric by metric")
    min_improvement: float = Field(0.0, description="absolute gain the challenger needs over the champion")


class InferenceParams(BaseModel):
    batch_size: int = 200_000


class Params(BaseModel):
    use_case: str | None = Field(None, description="the use case these params belong to (set when they are loaded for one)")
    data: DataParams = DataParams()
    data_validation: DataValidationParams = DataValidationParams()
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    model_validation: ModelValidationParams = ModelValidationParams()
    deployment: DeploymentParams = DeploymentParams()
    inference: InferenceParams = InferenceParams()


class ConfigError(ConveyorError, ValueError):
    """Bad params file or override; the message names the key (also a ValueError, as it was)."""


def _coerce(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`section.key=value` strings (values parsed as YAML scalars) applied onto a dict."""
    for item in overrides:
        for part in [p for p in item.split(",") if p.strip()]:
            if "=" not in part:
                raise ConfigError(f"override {part!r} must look like section.key=value")
            key, value = part.split("=", 1)
            path = key.strip().split(".")
            node = raw
            for name in path[:-1]:
                node = node.setdefault(name, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"override {key!r}: {name!r} is not a section")
            node[path[-1]] = _coerce(value.strip())
    return raw


def load_raw(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def check(raw: dict[str, Any], source: str | Path, sections: dict[str, type[BaseModel]] | None = None) -> Params:
    """`raw` (a params dict read from `source`) as typed params; ConfigError names the first bad key.

    `sections` types some sections with a use case's own models (e.g. `{"train": ModelParams}`).
    """
    prefix: tuple = ()
    try:
        params = Params.model_validate(raw)
        for name, model in (sections or {}).items():
            prefix = (name,)
            setattr(params, name, model.model_validate(raw.get(name) or {}))
        return params
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in (*prefix, *err["loc"]))
        raise ConfigError(f"{source}: {where}: {err['msg']}") from None


def load_params(path: str | Path, overrides: list[str] | None = None) -> Params:
    """The generic view of a params file (a use case's own sections stay untyped extras)."""
    return check(apply_overrides(load_raw(path), overrides or []), path)
