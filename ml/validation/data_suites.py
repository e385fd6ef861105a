"""Run Great Expectations 1.x suites on data frames and build their Data Docs.

The suites themselves are derived from a use case's declaration (`ml.usecase.expectations`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# BASIC: each failed expectation keeps its unexpected count and a sample of unexpected values
# (what `_describe` and the Data Docs show). SUMMARY also builds the index list of unexpected
# rows, for which GX copies the whole table once per column expectation: ~35% of the
# validation time at 1M rows, for a list nobody reads.
RESULT_FORMAT = "BASIC"


@dataclass
class SuiteResult:
    suite: str
    success: bool
    evaluated: int
    failed: list[str]


def validate_frames(frames: dict[str, tuple[pd.DataFrame | Callable[[], pd.DataFrame], list]], docs_root: Path,
                    source_name: str = "data") -> tuple[list[SuiteResult], Path]:
    """Run one suite per named frame in a file-backed GX context; build Data Docs.

    A frame may be given as a function returning it: it is then read just before its suite
    runs and dropped right after, so only one table is in memory at a time (at millions of
    rows each table is GBs, and GX copies it while it validates).

    Returns per-suite results and the Data Docs site directory (static HTML).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(docs_root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_or_update_pandas(name=source_name)
    results: list[SuiteResult] = []
    for name, (given, expectations) in frames.items():
        df = given() if callable(given) else given
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
            result_format={"result_format": RESULT_FORMAT},
        ))
        with _lean_pandas_engine():
            outcome = checkpoint.run(batch_parameters={"dataframe": df})
        for run_result in outcome.run_results.values():
            failed = [_describe(r) for r in run_result.results if not r.success]
            results.append(SuiteResult(f"{name}_suite", bool(run_result.success), len(run_result.results), failed))
        del df, outcome  # a loaded frame is freed before the next one is read...
        _forget_batches(context)  # ...which needs GX to let go of it too
    context.build_data_docs()
    site = Path(docs_root) / "gx" / "uncommitted" / "data_docs" / "local_site"
    return results, site


def _forget_batches(context) -> None:
    """Drop the frames GX's pandas engines keep after a run: each data source's engine caches
    the batch (and its frame) it validated until the next one replaces it, so without this the
    first table is still in memory while the second is read and validated."""
    for datasource in context.data_sources.all().values():
        manager = datasource.get_execution_engine().batch_manager
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()


@contextmanager
def _lean_pandas_engine() -> Iterator[None]:
    """GX's pandas engine without three costs that decide nothing (measured at 5M rows):

    - pandas copy-on-write: each column expectation first takes `df[df[column].notnull()]`,
      which without it deep-copies the whole table (every column) even when no value is null;
      with it the all-rows result shares the table's memory. GX only reads the frame.
    - no `pandas_data_fingerprint` batch marker: GX hashes every cell of a table under 1 GB
      (its string columns as Python objects) to label the batch; the data version (the DVC md5
      of the file) already names these rows exactly.
    - the Decimal scan before a column mean (the label rate) returns at once for a numeric
      array, which cannot hold `decimal.Decimal`s; object columns are still scanned.

    Every expectation still runs on every row; only these module values are swapped, and
    restored on exit.
    """
    import great_expectations.execution_engine.pandas_execution_engine as engine
    import great_expectations.util as gx_util

    scan = gx_util.does_ndarray_contain_decimal_dtype

    def numeric_has_no_decimals(data) -> bool:
        return False if getattr(data, "dtype", None) is not None and data.dtype.kind in "biufcmM" else scan(data)

    threshold = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD, gx_util.does_ndarray_contain_decimal_dtype = 0, numeric_has_no_decimals
    try:
        with pd.option_context("mode.copy_on_write", True):
            yield
    finally:
        engine.HASH_THRESHOLD, gx_util.does_ndarray_contain_decimal_dtype = threshold, scan


def _describe(result) -> str:
    """One readable line per failed expectation: what was expected and what was seen."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format") and not isinstance(v, (list, set))}
    seen = result.result or {}
    detail = ""
    if "unexpected_count" in seen:
        detail = f" -> {seen['unexpected_count']} unexpected"
        if seen.get("partial_unexpected_list"):
            detail += f", e.g. {[_shown(v) for v in seen['partial_unexpected_list'][:3]]}"
    elif "observed_value" in seen:
        detail = f" -> observed {seen['observed_value']}"
    return f"{config.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())}){detail}"


def _shown(value):
    """A sampled unexpected value as the line shows it: any missing value (None, NaN, NaT, pd.NA:
    which one depends on the column's dtype) as None."""
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # a list or array value: shown as it is
        return value
