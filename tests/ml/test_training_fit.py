"""`ml.training.estimator.fit` fits the model `Pipeline.fit` fits, with less memory at its peak.

The training task fits a use case's pipeline in two calls (its transformers, then the final
estimator on their array) and empties the training frame once the features are copied out,
so the frames are not resident while the trees fit. These tests pin that this gives the very
model `estimator.fit(train[features], train[label])` gives: the same fitted state in every step
(every attribute, arrays byte for byte), identical predictions and metrics, for each model type
the use cases declare. No servers.
"""

from __future__ import annotations

import math
import types

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


def assert_same_fitted(a, b, where: str = "model") -> None:
    """`a` and `b` hold the same state: same types, equal plain values, arrays byte for byte, all
    the way down (estimators, their fitted attributes, the trees' node arrays). Not `pickle.dumps`
    equality: pickle's bytes also depend on which equal strings happen to be one object (its memo),
    which another test run earlier in the same process can change."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        if a.dtype.hasobject:
            for i, (x, y) in enumerate(zip(a.ravel().tolist(), b.ravel().tolist())):
                assert_same_fitted(x, y, f"{where}[{i}]")
        else:
            assert a.tobytes() == b.tobytes(), f"{where}: arrays differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for key in a:
            assert_same_fitted(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_fitted(x, y, f"{where}[{i}]")
    elif isinstance(a, np.random.RandomState):
        assert_same_fitted(a.get_state(), b.get_state(), f"{where}.state")
    elif isinstance(a, np.random.Generator):
        assert_same_fitted(a.bit_generator.state, b.bit_generator.state, f"{where}.state")
    elif isinstance(a, (float, np.floating)) and math.isnan(a):
        assert math.isnan(b), f"{where}: nan vs {b}"
    elif isinstance(a, (types.FunctionType, types.BuiltinFunctionType, np.ufunc, type, np.dtype)):
        assert a is b or a == b, f"{where}: {a!r} vs {b!r}"  # functions, ufuncs, classes (a dtype= parameter)
    elif hasattr(a, "__dict__"):
        assert_same_fitted(vars(a), vars(b), where)
    elif isinstance(a, (str, bytes, int, float, complex, bool, np.generic)) or a is None:
        assert a == b, f"{where}: {a!r} vs {b!r}"
    else:  # an extension type (a Cython loss): what pickle would save of it
        ra, rb = a.__reduce_ex__(4), b.__reduce_ex__(4)
        assert ra[0] is rb[0], f"{where}: rebuilt by {ra[0]!r} vs {rb[0]!r}"
        assert_same_fitted(list(ra[1:]), list(rb[1:]), f"{where}.<reduce>")


def test_the_comparison_sees_a_different_model(fraud_rows):
    """The check above fails on models fitted differently (it is not vacuous)."""
    train, _ = fraud_rows
    params = FRAUD.load_params().train
    other = FRAUD.load_params(overrides=["train.max_iter=7"]).train
    with pytest.raises(AssertionError):
        assert_same_fitted(plain_fit(FRAUD, params, train), plain_fit(FRAUD, other, train))


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
    assert_same_fitted(got, want)  # every fitted attribute of every step, arrays byte for byte
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
