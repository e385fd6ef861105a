"""usecase.yml parsing: the shipped fraud declaration, and each bad input at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.usecase import load_use_case
from ml.usecase.load import read
from tests.usecase.conftest import USECASE, line_of

PROJECT = Path(__file__).resolve().parents[2]


def test_fraud_declaration_parses_into_the_tables_the_pipeline_uses():
    uc = load_use_case("fraud")
    assert uc.task == "binary_classification" and uc.label == "is_fraud"
    assert uc.key_columns == ["transaction_id", "customer_id", "timestamp"]
    assert uc.feature_names == ["amount", "merchant_category", "card_present", "hour", "day_of_week",
                                "distance_from_home_km",  # the customer aggregates: looked up (feature table) + on demand
                                "txn_count_24h", "mean_amount_30d", "amount_to_mean_30d"]
    assert uc.gold_columns == [*uc.key_columns, *uc.feature_names, "is_fraud"]
    assert uc.registered_name == "fraud-detector" and uc.experiment == "fraud-detection"


def test_fraud_generator_and_features_match_the_declaration():
    from usecases.fraud.generate import generate_transactions

    uc = load_use_case("fraud")
    raw = generate_transactions(200, seed=1)
    assert list(raw.columns) == uc.raw_columns
    assert list(uc.build_features(raw[uc.request_columns]).columns) == uc.feature_names


def _diags(project, text: str):
    root = project(usecase=text)
    path = root / "usecases" / "tiny" / "usecase.yml"
    spec, _, diags = read(path, "usecases/tiny/usecase.yml")
    return spec, [d.render() for d in diags], path


@pytest.mark.parametrize("change, needle, message", [
    (("task: binary_classification", "task: clasification"), "task:",
     "unknown task type 'clasification' (one of: binary_classification, regression) (did you mean 'binary_classification'?)"),
    (("label: y", "label: target"), "label: target", "dataset.label 'target' is not a declared column"),
    (("request: [x, colour]", "request: [x, size]"), "request:", "features.request: 'size' is not a declared column"),
    (("    x: {type: float, min: 0.0, max: 10.0}\n    colour", "    x: {type: float, min: 9.0, max: 1.0}\n    colour"),
     "min: 9.0", "min 9.0 is greater than max 1.0"),
    (("  factory: usecases.tiny.model:make", "  factory: make_model"), "factory:", "'make_model' must look like package.module:name"),
    (("validation:", "validaton:"), "validaton:", "unknown key 'validaton'"),
])
def test_each_bad_declaration_is_one_message_at_its_line(project, change, needle, message):
    spec, diags, path = _diags(project, USECASE.replace(*change))
    assert spec is None
    assert any(d == f"usecases/tiny/usecase.yml:{line_of(path, needle)}: {message}" for d in diags), diags


def test_a_binary_label_has_two_values(project):
    spec, diags, path = _diags(project, USECASE.replace("y: {type: int, values: [0, 1]}", "y: {type: int, values: [0, 1, 2]}"))
    assert diags == [f"usecases/tiny/usecase.yml:{line_of(path, 'values: [0, 1, 2]')}: "
                     "a binary_classification label has two values, not [0, 1, 2]"]


def test_an_unknown_use_case_names_the_known_ones():
    from ml.usecase import UseCaseError

    with pytest.raises(UseCaseError, match="unknown use case 'frud'.*did you mean 'fraud'"):
        load_use_case("frud", root=PROJECT)
