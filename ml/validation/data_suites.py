"""Great Expectations 1.x suites for raw (bronze) and feature (gold) data.

Why two suites: the raw suite catches what a source sends wrong (schema, nulls,
impossible amounts or coordinates, unknown categories, duplicate ids, label rate);
the feature suite guards the training contract (feature ranges and types) so a bug
in feature code is caught before a model learns from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.config import DataValidationParams
from ml.data.generate import CATEGORY_NAMES, RAW_COLUMNS
from ml.features import FEATURES, LABEL


def raw_expectations(p: DataValidationParams) -> list:
    import great_expectations.expectations as gxe

    mostly = 1.0 - p.max_null_fraction
    exps = [
        gxe.ExpectTableColumnsToMatchSet(column_set=RAW_COLUMNS, exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=p.min_rows, max_value=p.max_rows),
        gxe.ExpectColumnValuesToBeUnique(column="transaction_id"),
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0.0, max_value=p.max_amount, strict_min=True),
        gxe.ExpectColumnValuesToBeInSet(column="merchant_category", value_set=CATEGORY_NAMES),
        gxe.ExpectColumnValuesToBeInSet(column=LABEL, value_set=[0, 1]),
        gxe.ExpectColumnMeanToBeBetween(column=LABEL, min_value=p.min_label_rate, max_value=p.max_label_rate),
    ]
    for col in ("home_lat", "txn_lat"):
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=-90.0, max_value=90.0))
    for col in ("home_lon", "txn_lon"):
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=-180.0, max_value=180.0))
    for col in RAW_COLUMNS:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col, mostly=mostly))
    return exps


def feature_expectations(p: DataValidationParams) -> list:
    import great_expectations.expectations as gxe

    exps = [
        gxe.ExpectTableColumnsToMatchSet(column_set=["transaction_id", "customer_id", "timestamp", *FEATURES, LABEL], exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=p.min_rows, max_value=p.max_rows),
        gxe.ExpectColumnValuesToBeBetween(column="hour", min_value=0, max_value=23),
        gxe.ExpectColumnValuesToBeBetween(column="day_of_week", min_value=0, max_value=6),
        gxe.ExpectColumnValuesToBeBetween(column="distance_from_home_km", min_value=0.0, max_value=20_040.0),
        gxe.ExpectColumnValuesToBeInSet(column="card_present", value_set=[0, 1]),
        gxe.ExpectColumnValuesToBeInSet(column="merchant_category", value_set=CATEGORY_NAMES),
        gxe.ExpectColumnValuesToBeOfType(column="amount", type_="float64"),
        gxe.ExpectColumnMeanToBeBetween(column=LABEL, min_value=p.min_label_rate, max_value=p.max_label_rate),
    ]
    for col in [*FEATURES, LABEL]:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    return exps


@dataclass
class SuiteResult:
    suite: str
    success: bool
    evaluated: int
    failed: list[str]


def validate_frames(frames: dict[str, tuple[pd.DataFrame, list]], docs_root: Path) -> tuple[list[SuiteResult], Path]:
    """Run one suite per named frame in a file-backed GX context; build Data Docs.

    Returns per-suite results and the Data Docs site directory (static HTML).
    """
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(docs_root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_or_update_pandas(name="fraud")
    results: list[SuiteResult] = []
    for name, (df, expectations) in frames.items():
        asset = source.add_dataframe_asset(name=name)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_batch")
        suite = context.suites.add_or_update(gx.ExpectationSuite(name=f"{name}_suite"))
        for exp in expectations:
            suite.add_expectation(exp)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"{name}_validation", data=batch_def, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")],
            result_format={"result_format": "SUMMARY"},
        ))
        outcome = checkpoint.run(batch_parameters={"dataframe": df})
        for run_result in outcome.run_results.values():
            failed = [_describe(r) for r in run_result.results if not r.success]
            results.append(SuiteResult(f"{name}_suite", bool(run_result.success), len(run_result.results), failed))
    context.build_data_docs()
    site = Path(docs_root) / "gx" / "uncommitted" / "data_docs" / "local_site"
    return results, site


def _describe(result) -> str:
    """One readable line per failed expectation: what was expected and what was seen."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format") and not isinstance(v, (list, set))}
    seen = result.result or {}
    detail = ""
    if "unexpected_count" in seen:
        detail = f" -> {seen['unexpected_count']} unexpected"
        if seen.get("partial_unexpected_list"):
            detail += f", e.g. {seen['partial_unexpected_list'][:3]}"
    elif "observed_value" in seen:
        detail = f" -> observed {seen['observed_value']}"
    return f"{config.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())}){detail}"
