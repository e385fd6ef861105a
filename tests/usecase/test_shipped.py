"""The use cases shipped in the repo, and which one a task picks without --use-case."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.usecase import UseCaseError, available, check, default_name, load_use_case

PROJECT = Path(__file__).resolve().parents[2]


def test_the_shipped_diabetes_use_case_checks_clean():
    assert check(PROJECT, "diabetes") == []


def test_diabetes_is_a_regression_on_the_packaged_dataset():
    uc = load_use_case("diabetes")
    assert uc.task == "regression" and uc.timestamp is None and uc.compared == ["rmse", "mae"]
    params = uc.load_params()
    raw = uc.generate(params.data)
    assert len(raw) == 442 and list(raw.columns) == uc.raw_columns
    assert raw["patient_id"].is_unique and raw["patient_id"].iloc[0] == "p000"
    for name, col in uc.spec.dataset.columns.items():  # the declared ranges hold on the whole dataset
        if col.min is not None:
            assert raw[name].between(col.min, col.max).all(), name
    assert params.data_validation.min_rows <= 442 and params.deployment.primary_metric == "rmse"
    assert list(uc.build_features(raw).columns) == uc.feature_names


def test_a_task_without_use_case_takes_the_configured_default(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVEYOR_USE_CASE", raising=False)
    assert set(available()) >= {"fraud", "diabetes"}
    assert default_name() == "fraud"  # usecases/defaults.yml
    monkeypatch.setenv("CONVEYOR_USE_CASE", "diabetes")
    assert default_name() == "diabetes"


def test_without_a_default_several_use_cases_are_ambiguous(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVEYOR_USE_CASE", raising=False)
    for name in ("a", "b"):
        (tmp_path / "usecases" / name).mkdir(parents=True)
        (tmp_path / "usecases" / name / "usecase.yml").write_text(f"name: {name}\n")
    with pytest.raises(UseCaseError, match=r"pass --use-case .*default_use_case in usecases/defaults.yml.*a, b"):
        default_name(tmp_path)
    (tmp_path / "usecases" / "defaults.yml").write_text("default_use_case: b\n")
    assert default_name(tmp_path) == "b"
    (tmp_path / "usecases" / "defaults.yml").write_text("default_use_case: [b]\n")
    with pytest.raises(UseCaseError, match="default_use_case must be a use case name"):
        default_name(tmp_path)
