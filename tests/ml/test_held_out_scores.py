"""Held-out scores kept by `train` for `validate_model` and `deploy_model` (ml.training.held_out_scores):
used only when the key proves they are this model's on these rows, and the metrics are the same
as scoring again. No servers: a real fitted model on a small gold table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.config import Params
from ml.data.medallion import gold, silver
from ml.training import held_out_scores as hs
from ml.training.estimator import evaluate, fit, predict, split
from ml.usecase import load_use_case
from usecases.fraud.generate import generate_transactions

FRAUD = load_use_case("fraud")
PARAMS = Params()


@pytest.fixture(scope="module")
def trained():
    g = gold(FRAUD, silver(FRAUD, generate_transactions(3000, seed=7)))
    train, test = split(FRAUD, g, 0.2)
    model = fit(FRAUD, FRAUD.load_params().train, train)
    return model, test.reset_index(drop=True)


@pytest.fixture
def job_run(tmp_path, monkeypatch):
    """Inside a job run: the run's task values directory is set."""
    monkeypatch.setenv("CONVEYOR_TASK_VALUES_DIR", str(tmp_path / "values"))
    return tmp_path / "values"


def key_for(rows, version="3", run_id="run-a", data_version="dv-1"):
    return hs.key(FRAUD, PARAMS, "fraud-detector-dev", version, run_id, data_version, rows)


def test_reused_scores_give_the_same_metrics_as_scoring_again_and_skip_the_model_load(trained, job_run):
    model, test = trained
    scores = predict(FRAUD, model, test)
    path = hs.save(key_for(test), scores)
    assert path is not None and path.parent.parent == job_run and path.stat().st_mode & 0o077 == 0

    loads = []
    reused, loaded = hs.scores_of(FRAUD, key_for(test), test, lambda: loads.append(1) or model)
    assert loads == [] and loaded is None, "a matching key must not load the model"
    np.testing.assert_array_equal(reused, scores)
    threshold = FRAUD.load_params().train.threshold
    assert evaluate(FRAUD, None, test, threshold, reused) == evaluate(FRAUD, model, test, threshold)


@pytest.mark.parametrize("change", ["version", "run_id", "data_version", "a feature", "row order", "fewer rows", "split"])
def test_a_key_that_does_not_match_is_scored_again(trained, job_run, change):
    model, test = trained
    hs.save(key_for(test), np.full(len(test), 0.5))  # scores that would give other metrics if used
    rows, kwargs, params = test, {}, PARAMS
    if change in ("version", "run_id", "data_version"):
        kwargs = {change: "other"}
    elif change == "a feature":
        rows = test.copy()
        rows.loc[5, "amount"] += 1.0
    elif change == "row order":
        rows = test.iloc[::-1].reset_index(drop=True)
    elif change == "fewer rows":
        rows = test.iloc[:-1]
    else:
        params = PARAMS.model_copy(update={"split": PARAMS.split.model_copy(update={"test_fraction": 0.3})})
    key = hs.key(FRAUD, params, "fraud-detector-dev", kwargs.get("version", "3"), kwargs.get("run_id", "run-a"),
                 kwargs.get("data_version", "dv-1"), rows)
    if change != "version":  # same file name, different key: refused on the key
        assert hs._path(key) == hs._path(key_for(test))
    assert hs.load(key) is None
    loads = []
    scores, loaded = hs.scores_of(FRAUD, key, rows, lambda: loads.append(1) or model)
    assert loads == [1] and loaded is model
    np.testing.assert_array_equal(scores, predict(FRAUD, model, rows))
    assert hs.load(key) is not None, "what was scored again is kept for the next task"


def test_outside_a_job_run_nothing_is_kept(trained, monkeypatch):
    model, test = trained
    monkeypatch.delenv("CONVEYOR_TASK_VALUES_DIR", raising=False)
    assert hs.save(key_for(test), predict(FRAUD, model, test)) is None
    assert hs.load(key_for(test)) is None


def test_a_damaged_file_is_scored_again(trained, job_run):
    model, test = trained
    path = hs.save(key_for(test), predict(FRAUD, model, test))
    path.write_bytes(b"not an npz")
    assert hs.load(key_for(test)) is None


def test_the_same_rows_read_two_ways_have_the_same_digest(tmp_path):
    """`train` splits the table it read; a later task reads it again and splits it the same way:
    the rows are equal, their Arrow layout (chunks, slice offsets) is not, and must not matter."""
    from ml.data.tables import STR, read_frame, write_frame

    g = gold(FRAUD, silver(FRAUD, generate_transactions(3000, seed=11)))
    g[FRAUD.id_column] = g[FRAUD.id_column].astype(STR)
    path = tmp_path / "gold.parquet"
    write_frame(g, path)
    whole = read_frame(path, categories=True)
    _, held_out = split(FRAUD, whole, 0.2)
    parts = pd.concat([read_frame(path, categories=True).iloc[:1000], read_frame(path, categories=True).iloc[1000:]])
    _, again = split(FRAUD, parts.reset_index(drop=True), 0.2)
    assert hs.rows_digest(FRAUD, held_out) == hs.rows_digest(FRAUD, again)
    changed = again.copy()
    changed.loc[changed.index[5], FRAUD.id_column] = "someone-else"
    assert hs.rows_digest(FRAUD, changed) != hs.rows_digest(FRAUD, again)


@pytest.fixture(scope="module")
def gold_held_out(tmp_path_factory):
    """Held-out rows as `ml.registry.held_out` gives them: gold written, read for training, split."""
    from ml.data.tables import write_frame
    from ml.training.estimator import read_training_table

    path = tmp_path_factory.mktemp("gold") / "gold.parquet"
    write_frame(gold(FRAUD, silver(FRAUD, generate_transactions(3000, seed=13))), path)
    return split(FRAUD, read_training_table(FRAUD, path), PARAMS.split.test_fraction, PARAMS.split.seed)[1]


def test_kept_held_out_rows_come_back_equal_with_the_digest_train_recorded(gold_held_out, job_run):
    rows = gold_held_out
    path = hs.save_rows(FRAUD, PARAMS, "dv-1", rows)
    assert path is not None and path.parent.parent == job_run and path.stat().st_mode & 0o077 == 0
    found = hs.load_rows(FRAUD, PARAMS, "dv-1")
    assert found is not None
    again, digest = found
    pd.testing.assert_frame_equal(again, rows, check_exact=True)  # same values, dtypes (str, categorical), index
    assert digest == hs.rows_digest(FRAUD, rows)


@pytest.mark.parametrize("change", ["data_version", "split", "damaged", "other rows"])
def test_held_out_rows_that_do_not_match_are_not_used(gold_held_out, job_run, change):
    rows, params, version = gold_held_out, PARAMS, "dv-1"
    path = hs.save_rows(FRAUD, PARAMS, "dv-1", rows)
    if change == "data_version":
        version = "dv-2"
    elif change == "split":
        params = PARAMS.model_copy(update={"split": PARAMS.split.model_copy(update={"seed": 7})})
    elif change == "damaged":
        path.write_bytes(path.read_bytes()[:200])
    else:  # rows that do not hash to the digest recorded with them
        hs.save_rows(FRAUD, PARAMS, "dv-1", rows.iloc[::-1].reset_index(drop=True), hs.rows_digest(FRAUD, rows))
    assert hs.load_rows(FRAUD, params, version) is None


def test_outside_a_job_run_no_rows_are_kept(gold_held_out, monkeypatch):
    monkeypatch.delenv("CONVEYOR_TASK_VALUES_DIR", raising=False)
    assert hs.save_rows(FRAUD, PARAMS, "dv-1", gold_held_out) is None
    assert hs.load_rows(FRAUD, PARAMS, "dv-1") is None
