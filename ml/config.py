"""Typed view of `params.yaml`: one pydantic object per pipeline step.

Every knob a data scientist may turn lives in `params.yaml` (DVC tracks the `data`
section as stage params); tasks accept `--set section.key=value` overrides so a job
run can change one value without editing the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from core.errors import ConveyorError


class DataParams(BaseModel):
    rows: int = Field(20_000, ge=10, description="transactions to generate")
    seed: int = 42
    drift: float = Field(0.0, ge=0.0, le=3.0, description="0 = reference distribution; higher shifts amounts, distance, channel mix and fraud rate")
    days: int = Field(60, ge=1)
    start: str = "2026-01-01"
    subset: float = Field(1.0, gt=0.0, le=1.0, description="fraction of the rows to keep (integration runs on a data subset)")
    source: str = Field("generate", description="`generate`, or a parquet/csv file of raw transactions to ingest")


class DataValidationParams(BaseModel):
    min_rows: int = 500
    max_rows: int = 100_000_000
    min_label_rate: float = 0.002
    max_label_rate: float = 0.20
    max_amount: float = 100_000.0
    max_null_fraction: float = 0.0


class SplitParams(BaseModel):
    test_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="most recent share of transactions held out (time-based split)")


class TrainParams(BaseModel):
    model_type: Literal["hist_gradient_boosting", "logistic_regression"] = "hist_gradient_boosting"
    learning_rate: float = 0.1
    max_iter: int = 100
    max_depth: int | None = 4
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    C: float = 1.0
    random_state: int = 7
    threshold: float = Field(0.3, gt=0.0, lt=1.0, description="probability above which a transaction is flagged")
    importance_sample: int = Field(3000, description="rows used for permutation feature importance")


class ModelValidationParams(BaseModel):
    min_roc_auc: float = 0.80
    min_pr_auc: float = 0.15
    max_relative_regression: float = Field(0.02, description="allowed relative drop vs champion on the same held-out data")
    slice_column: str = "merchant_category"
    min_slice_roc_auc: float = 0.60
    min_slice_positives: int = 10
    min_held_out_positives: int = Field(10, description="below this many fraud cases in held-out data, metric gates are reported as not judged")
    required_tags: list[str] = ["git_sha", "data_version", "bundle_target", "job_run_id"]


class DeploymentParams(BaseModel):
    primary_metric: Literal["roc_auc", "pr_auc"] = "pr_auc"
    baseline: dict[str, float] = {"roc_auc": 0.75, "pr_auc": 0.10}
    min_improvement: float = Field(0.0, description="absolute gain the challenger needs over the champion")
    bento_service: str = "fraud_detector"


class InferenceParams(BaseModel):
    batch_size: int = 200_000


class Params(BaseModel):
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


def check(raw: dict[str, Any], source: str | Path) -> Params:
    """`raw` (a params dict read from `source`) as typed params; ConfigError names the first bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{source}: {where}: {err['msg']}") from None


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Params:
    return check(apply_overrides(load_raw(path), overrides or []), path)
