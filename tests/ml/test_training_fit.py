"""`ml.training.estimator.fit` fits the model `Pipeline.fit` fits, with less memory at its peak.

The training task fits a use case's pipeline in two calls (its transformers, then the final
estimator on their array) and empties the training frame once the features are copied out,
so the frames are not resident while the trees fit. These tests pin that this gives the very
model `estimator.fit(train[features], train[label])` gives: byte-identical fitted pipeline,
identical predictions and metrics, for each model type the use cases declare. No servers.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from ml.data.medallion import gold, silver
from ml.training.estimator import evaluate, fit, predict, split
from ml.usecase import load_use_case
from usecases.fraud.generate import generate_transactions

FRAUD = load_use_case("fraud")
DIABETES = load_use_case("diabetes")


@pytest.fixture(scope="module")
def fraud_rows():
    return split(FRAUD, gold(FRAUD, silver(FRAUD, generate_transactions(2000, seed=11))), 0.2)


@pytest.fixture(scope="module")
def diabetes_rows():
    return split(DIABETES, gold(DIABETES, silver(DIABETES, DIABETES.generate(DIABETES.load_params().data))), 0.2)


def plain_fit(uc, params, train: pd.DataFrame):
    """What training did before: the factory's estimator, `fit` on the feature frame and labels."""
    return uc.estimator(params).fit(train[uc.feature_names], train[uc.label].to_numpy())


# (use case, its rows, `--set` overrides, consume): each model type the use cases declare, and
# both ways of calling `fit` (the training task consumes; the other callers keep their frame)
CASES = [
    (FRAUD, "fraud_rows", [], True),                                        # column transformer + boosted trees
    (FRAUD, "fraud_rows", [], False),
    (FRAUD, "fraud_rows", ["train.model_type=logistic_regression"], True),  # nested pipeline: log, scaler (data-fitted)
    (DIABETES, "diabetes_rows", [], True),                                  # scaler + ridge
    (DIABETES, "diabetes_rows", ["train.model_type=hist_gradient_boosting"], False),  # a one-step pipeline
]


@pytest.fixture(autouse=True)
def one_thread():
    """Small fits run faster on one OpenMP thread on a busy machine (two threads spin-waiting on a
    loaded 2-core box made one 1,600-row fit take 20 s instead of 0.7 s); both fits of a test use it."""
    import sklearn.ensemble  # noqa: F401  threadpoolctl limits the OpenMP runtime only once it is loaded
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.mark.parametrize(("uc", "rows", "overrides", "consume"), CASES,
                         ids=["fraud-hgb-consumed", "fraud-hgb", "fraud-logistic-consumed", "diabetes-ridge-consumed",
                              "diabetes-hgb"])
def test_lean_fit_is_the_plain_pipeline_fit(uc, rows, overrides, consume, request):
    train, test = request.getfixturevalue(rows)
    params = uc.load_params(overrides=overrides).train
    want = plain_fit(uc, params, train)
    rows_given = train.copy()
    got = fit(uc, params, rows_given, consume=consume)

    assert [name for name, _ in got.steps] == [name for name, _ in want.steps]
    assert pickle.dumps(got) == pickle.dumps(want)  # every fitted attribute of every step, byte for byte
    for method in ("predict_proba", "predict") if uc.is_classification else ("predict",):
        np.testing.assert_array_equal(getattr(got, method)(test[uc.feature_names]),
                                      getattr(want, method)(test[uc.feature_names]))
    threshold = params.threshold
    assert evaluate(uc, got, test, threshold) == evaluate(uc, want, test, threshold)
    np.testing.assert_array_equal(predict(uc, got, test), predict(uc, want, test))
    if consume:  # the caller's frame was emptied: its memory is free while the trees fit
        assert rows_given.shape == (len(train), 0)
    else:
        pd.testing.assert_frame_equal(rows_given, train)


def test_fit_of_an_estimator_that_is_not_a_pipeline(monkeypatch):
    """A factory may return a bare estimator: it is fitted as it is."""
    from sklearn.linear_model import Ridge

    frame = pd.DataFrame({name: np.random.default_rng(1).random(200) for name in DIABETES.feature_names})
    frame[DIABETES.label] = frame.sum(axis=1)
    monkeypatch.setattr(type(DIABETES), "estimator", lambda self, p: Ridge(alpha=0.5))
    got = fit(DIABETES, DIABETES.load_params().train, frame.copy(), consume=True)
    want = Ridge(alpha=0.5).fit(frame[DIABETES.feature_names], frame[DIABETES.label].to_numpy())
    np.testing.assert_array_equal(got.coef_, want.coef_)
