"""GX suites derived from a declaration: the tiny use case's rules, and the fraud suites' size."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.config import DataValidationParams
from ml.usecase import load_use_case
from ml.usecase.expectations import feature_expectations, raw_expectations


def _described(exps) -> list[tuple[str, str | None]]:
    return [(e.expectation_type, getattr(e, "column", None)) for e in exps]


def test_raw_suite_follows_the_declaration(project):
    uc = load_use_case("tiny", root=project())
    got = _described(raw_expectations(uc, DataValidationParams()))
    assert got == [
        ("expect_table_columns_to_match_set", None), ("expect_table_row_count_to_be_between", None),
        ("expect_column_values_to_be_unique", "row_id"),
        ("expect_column_values_to_be_between", "x"), ("expect_column_values_to_be_in_set", "colour"),
        ("expect_column_values_to_be_in_set", "y"), ("expect_column_mean_to_be_between", "y"),
        *[("expect_column_values_to_not_be_null", c) for c in ("row_id", "x", "colour", "y")],
    ]


def test_feature_suite_adds_types_and_the_gold_layout(project):
    uc = load_use_case("tiny", root=project())
    exps = feature_expectations(uc, DataValidationParams())
    assert exps[0].column_set == ["row_id", "x", "colour", "y"]
    assert ("expect_column_values_to_be_of_type", "x") in _described(exps)


def test_custom_expectations_are_appended(project):
    root = project()
    decl = root / "usecases/tiny/usecase.yml"
    decl.write_text(decl.read_text() + "expectations: usecases.tiny.checks:extra\n")
    (root / "usecases/tiny/checks.py").write_text(
        "def extra(kind, params):\n"
        "    import great_expectations.expectations as gxe\n"
        "    return [gxe.ExpectColumnMaxToBeBetween(column='x', max_value=5.0)] if kind == 'raw' else []\n")
    import sys

    sys.path.insert(0, str(root))
    try:
        for name in [m for m in sys.modules if m == "usecases" or m.startswith("usecases.")]:
            sys.modules.pop(name)
        uc = load_use_case("tiny", root=root)
        assert raw_expectations(uc, DataValidationParams())[-1].expectation_type == "expect_column_max_to_be_between"
        assert feature_expectations(uc, DataValidationParams())[-1].expectation_type != "expect_column_max_to_be_between"
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "usecases" or m.startswith("usecases.")]:
            sys.modules.pop(name)


def test_fraud_suites_keep_their_expectations():
    uc = load_use_case("fraud")
    assert len(raw_expectations(uc, DataValidationParams())) == 22
    assert len(feature_expectations(uc, DataValidationParams())) == 29  # 20 + 3 per customer aggregate (type, not null, min)


@pytest.mark.slow
def test_a_frame_that_breaks_the_declaration_fails_the_raw_suite(project, tmp_path):
    from ml.validation.data_suites import validate_frames

    uc = load_use_case("tiny", root=project())
    bad = pd.DataFrame({"row_id": ["a", "a"], "x": [1.0, 11.0], "colour": ["red", "green"], "y": [0, 1]})
    (res,), _ = validate_frames({"raw": (bad, raw_expectations(uc, DataValidationParams(min_rows=1)))},
                                tmp_path / "gx", source_name="tiny")
    text = "\n".join(res.failed)
    assert not res.success and "column=x" in text and "green" in text and "unique" in text
