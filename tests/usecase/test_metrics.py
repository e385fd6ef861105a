"""Metrics by task type: values, direction, gates."""

from __future__ import annotations

import numpy as np
import pytest

from ml.usecase.metrics import TASK_METRICS, higher_is_better, passes, relative_change, scores


def test_classification_scores():
    y = np.array([0, 0, 1, 1])
    out = scores("binary_classification", y, np.array([0.1, 0.4, 0.35, 0.8]), threshold=0.5)
    assert set(out) == set(TASK_METRICS["binary_classification"].names)
    assert out["roc_auc"] == pytest.approx(0.75) and out["precision"] == 1.0 and out["recall"] == 0.5


def test_regression_scores():
    out = scores("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert out["rmse"] == pytest.approx(np.sqrt(4 / 3)) and out["mae"] == pytest.approx(2 / 3)
    assert out["r2"] == pytest.approx(1 - 4 / 2)


def test_direction_gates_and_relative_change():
    assert higher_is_better("binary_classification", "pr_auc") and not higher_is_better("regression", "rmse")
    assert higher_is_better("regression", "r2")
    assert passes("regression", "max_rmse", 2.0, 3.0) and not passes("regression", "max_rmse", 4.0, 3.0)
    assert passes("binary_classification", "min_roc_auc", 0.9, 0.8)
    assert relative_change("regression", "rmse", 9.0, 10.0) == pytest.approx(0.1)  # lower rmse: better
    assert relative_change("binary_classification", "roc_auc", 0.72, 0.8) == pytest.approx(-0.1)


def test_improvement_and_meets_follow_the_metric_direction():
    from ml.usecase.metrics import bound_operator, improvement, meets

    assert improvement("regression", "rmse", 55.0, 60.0) == pytest.approx(5.0)   # rmse down: better
    assert improvement("regression", "r2", 0.40, 0.45) == pytest.approx(-0.05)
    assert improvement("binary_classification", "pr_auc", 0.42, 0.40) == pytest.approx(0.02)
    assert meets("regression", "rmse", 60.0, 65.0) and not meets("regression", "rmse", 70.0, 65.0)
    assert meets("regression", "r2", 0.4, 0.3) and not meets("regression", "r2", float("nan"), 0.3)
    assert bound_operator("regression", "mae") == "<=" and bound_operator("binary_classification", "roc_auc") == ">="
