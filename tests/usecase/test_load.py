"""`check`: what `bundle validate` finds beyond the YAML itself — functions, data files, params."""

from __future__ import annotations

from pathlib import Path

from ml.usecase import check
from tests.usecase.conftest import USECASE, line_of

PROJECT = Path(__file__).resolve().parents[2]


def test_the_shipped_fraud_use_case_checks_clean():
    assert check(PROJECT, "fraud") == []


def test_a_consistent_tiny_use_case_checks_clean(project):
    assert check(project(), "tiny") == []


def test_a_feature_function_that_does_not_exist(project):
    root = project(usecase=USECASE.replace("usecases.tiny.features:build", "usecases.tiny.features:biuld"))
    line = line_of(root / "usecases/tiny/usecase.yml", "function: usecases.tiny.features")
    assert [d.render() for d in check(root, "tiny")] == [
        f"usecases/tiny/usecase.yml:{line}: features.function: usecases.tiny.features defines no 'biuld' (did you mean 'build'?)"]


def test_a_missing_feature_module(project):
    root = project(usecase=USECASE.replace("usecases.tiny.features:build", "usecases.tiny.feats:build"))
    (diag,) = check(root, "tiny")
    assert "features.function: module 'usecases.tiny.feats' not found in the project" in diag.render()


def test_a_dataset_whose_columns_do_not_match_the_declaration(project):
    root = project(rows="row_id,x,color,y\nr1,1.0,red,0\n")
    line = line_of(root / "usecases/tiny/usecase.yml", "path: usecases/tiny/rows.csv")
    assert [d.render() for d in check(root, "tiny")] == [
        f"usecases/tiny/usecase.yml:{line}: usecases/tiny/rows.csv does not match dataset.columns: "
        "declared but missing ['colour']; not declared ['color']"]


def test_params_gates_must_be_metrics_of_the_task_type(project):
    root = project(params="model_validation:\n  min_rmse: 3.0\n  max_log_loss: 0.2\n  min_slice_roc_auc: 0.6\n"
                          "deployment:\n  primary_metric: r2\n")
    params = root / "usecases/tiny/params.yaml"
    assert [d.render() for d in check(root, "tiny")] == [
        f"usecases/tiny/params.yaml:{line_of(params, 'min_rmse')}: min_rmse: 'rmse' is not a binary_classification "
        "metric (roc_auc, pr_auc, f1, precision, recall, log_loss)",
        f"usecases/tiny/params.yaml:{line_of(params, 'primary_metric')}: 'r2' is not a binary_classification metric "
        "(roc_auc, pr_auc, f1, precision, recall, log_loss)",
    ]


def test_a_gate_in_the_wrong_direction(project):
    root = project(params="model_validation:\n  max_roc_auc: 0.9\n")
    (diag,) = check(root, "tiny")
    assert diag.render().endswith("max_roc_auc: roc_auc is higher-is-better; use min_roc_auc")
