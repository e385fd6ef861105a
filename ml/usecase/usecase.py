"""A loaded use case: its declaration plus the code it names, as the generic tasks use it.

Tasks never import a use case's modules themselves: they ask a `UseCase` for its raw rows,
its features, its estimator, its params — so none of them knows which model it is working on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ConveyorError
from ml.config import ConfigError, DataParams, TrainParams, apply_overrides, check, load_raw
from ml.usecase.contract import UseCaseSpec
from ml.usecase.metrics import TaskMetrics, for_task


class UseCaseError(ConveyorError, ValueError):
    """A use case cannot be found or used as declared; the message names the use case and key."""


def resolve(ref: str, what: str) -> Any:
    """The object `package.module:name` names; UseCaseError when it cannot be imported."""
    module, _, name = ref.partition(":")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError as exc:
        raise UseCaseError(f"{what} {ref!r}: cannot import {module}: {exc}") from exc
    if found is None:
        raise UseCaseError(f"{what} {ref!r}: {module} has no {name!r}")
    return found


@dataclass
class UseCase:
    spec: UseCaseSpec
    dir: Path  # the use case's folder: usecase.yml, params.yaml, its code
    _resolved: dict[str, Any] = field(default_factory=dict, repr=False)

    # --- what the declaration says -------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def metrics(self) -> TaskMetrics:
        return for_task(self.spec.task)

    @property
    def is_classification(self) -> bool:
        return self.spec.task == "binary_classification"

    @property
    def label(self) -> str:
        return self.spec.dataset.label

    @property
    def id_column(self) -> str:
        return self.spec.dataset.id

    @property
    def timestamp(self) -> str | None:
        return self.spec.dataset.timestamp

    @property
    def raw_columns(self) -> list[str]:
        return list(self.spec.dataset.columns)

    @property
    def feature_names(self) -> list[str]:
        return list(self.spec.features.columns)

    @property
    def request_columns(self) -> list[str]:
        return list(self.spec.features.request)

    @property
    def key_columns(self) -> list[str]:
        """Columns the gold table keeps next to the features: id, entity key, timestamp."""
        d = self.spec.dataset
        return list(dict.fromkeys(c for c in (d.id, d.entity_key, d.timestamp) if c is not None))

    @property
    def gold_columns(self) -> list[str]:
        return [*self.key_columns, *(f for f in self.feature_names if f not in self.key_columns), self.label]

    @property
    def label_values(self) -> list | None:
        declared = self.spec.dataset.columns[self.label].values
        return list(declared) if declared is not None else ([0, 1] if self.is_classification else None)

    @property
    def registered_name(self) -> str:
        return self.spec.model.registered_name or self.name.replace("_", "-")

    @property
    def experiment(self) -> str:
        return self.spec.model.experiment or self.name.replace("_", "-")

    @property
    def score_column(self) -> str:
        return self.spec.model.score_column or ("probability" if self.is_classification else "prediction")

    @property
    def prediction_column(self) -> str:
        return self.spec.model.prediction_column or self.label

    @property
    def compared(self) -> list[str]:
        return list(self.spec.validation.compared or self.metrics.compared)

    @property
    def params_file(self) -> Path:
        return self.dir / "params.yaml"

    # --- the code it names ---------------------------------------------------------------
    def _get(self, ref: str, what: str) -> Any:
        if ref not in self._resolved:
            self._resolved[ref] = resolve(ref, f"use case {self.name!r}: {what}")
        return self._resolved[ref]

    def load_params(self, overrides: list[str] | None = None, path: str | Path | None = None):
        """This use case's params (its params.yaml, or `path`) with `overrides`, its own sections typed."""
        from ml.config import Params

        source = Path(path) if path else self.params_file
        raw = apply_overrides(load_raw(source), list(overrides or []))
        if raw.setdefault("use_case", self.name) != self.name:
            raise ConfigError(f"{source}: use_case: these params belong to {raw['use_case']!r}, not {self.name!r}")
        sections: dict[str, type] = {}
        if self.spec.source.params:
            sections["data"] = self._typed(self.spec.source.params, DataParams, "source.params")
        if self.spec.model.params:
            sections["train"] = self._typed(self.spec.model.params, TrainParams, "model.params")
        params: Params = check(raw, source, sections)
        self._check_gates(params, source)
        if params.deployment.primary_metric is None:
            params.deployment.primary_metric = self.metrics.primary
        return params

    def raw_params(self, overrides: list[str] | None = None, path: str | Path | None = None) -> dict:
        """The params as a plain dict (what the DVC workspace's params.yaml holds), checked first."""
        source = Path(path) if path else self.params_file
        raw = apply_overrides(load_raw(source), list(overrides or []))
        raw.setdefault("use_case", self.name)
        self.load_params(overrides, path)
        return raw

    def _typed(self, ref: str, base: type, what: str) -> type:
        model = self._get(ref, what)
        if not (isinstance(model, type) and issubclass(model, base)):
            raise UseCaseError(f"use case {self.name!r}: {what} {ref!r} is not a subclass of {base.__module__}.{base.__name__}")
        return model

    def _check_gates(self, params, source: Path) -> None:
        from ml.usecase.load import gate_problem

        for gate in [*params.model_validation.gates(), *params.model_validation.gates(slices=True)]:
            problem = gate_problem(self.task, gate)
            if problem:
                raise ConfigError(f"{source}: model_validation: {problem}")
        for key in [params.deployment.primary_metric, *params.deployment.baseline]:
            if key is not None and key not in self.metrics.names:
                raise ConfigError(f"{source}: deployment: {key!r} is not a {self.task} metric ({', '.join(self.metrics.names)})")

    def build_features(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame: the declared feature columns, in order, computed from raw rows."""
        missing = [c for c in self.request_columns if c not in raw.columns]
        if missing:
            raise UseCaseError(f"rows lack columns {missing} the features of use case {self.name!r} are computed from")
        frame = self._get(self.spec.features.function, "features.function")(raw)
        absent = [c for c in self.feature_names if c not in frame.columns]
        if absent:
            raise UseCaseError(f"use case {self.name!r}: {self.spec.features.function} did not return the declared "
                               f"feature columns {absent}")
        return frame[self.feature_names]

    def build_feature_arrays(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The declared feature columns (numpy arrays, in order) from raw columns, by the use case's
        `features.array_function`: the pandas-free twin of `build_features` that serving uses for a
        few rows. None when the use case declares none."""
        ref = self.spec.features.array_function
        if ref is None:
            return None
        out = self._get(ref, "features.array_function")(raw)
        return {c: out[c] for c in self.feature_names}

    def estimator(self, train_params: TrainParams):
        """A fresh, unfitted estimator from the use case's factory."""
        return self._get(self.spec.model.factory, "model.factory")(train_params, self.spec.features.columns)

    def generate(self, data: DataParams) -> pd.DataFrame:
        """Raw rows from the declared generator: `function(rows=, seed=, **the source's own knobs)`."""
        knobs = {k: v for k, v in data.model_dump().items() if k not in ("source", "subset", "rows", "seed")}
        rows = max(10, int(round(data.rows * data.subset))) if data.rows is not None else None
        return self._get(self.spec.source.function, "source.function")(rows=rows, seed=data.seed, **knobs)

    def source_files(self, root: Path, source=None) -> list[Path]:
        """The declared file, or the parquet/csv partitions of the declared directory (any depth)
        or glob, in the project at `root`; `source` instead of the default one (a target's)."""
        spec = source or self.spec.source
        path = root / spec.path
        if spec.kind == "file":
            return [path] if path.is_file() else []
        if path.is_dir():
            found = [*path.glob("**/*.parquet"), *path.glob("**/*.csv")]
        else:
            found = list(root.glob(spec.path)) if set("*?[") & set(spec.path) else []
        return sorted(p for p in found if p.is_file())

    def custom_expectations(self, kind: str, params) -> list:
        """The use case's own GX expectations for suite `kind` (`raw` or `features`)."""
        if not self.spec.expectations:
            return []
        return list(self._get(self.spec.expectations, "expectations")(kind, params) or [])
