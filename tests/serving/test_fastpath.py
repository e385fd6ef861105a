"""The serving fast path gives the same answers as the pandas / scikit-learn path.

- each use case's `features.array_function` gives identical features (values and dtypes) to
  `build_features` on random rows, as a batch and one row at a time (fraud AND diabetes);
- a compiled pipeline (`ml.serving.compiled`) scores like the fitted sklearn pipeline
  (`np.allclose`), for the fraud pipeline (one-hot + passthrough → boosted trees), its linear
  variant (log1p + scaling → logistic regression) and the diabetes one (scaling → ridge);
- what cannot be compiled is not, and the engine then keeps sklearn's path;
- the engine on the fast path answers and logs what the pandas path does.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from ml.serving import compiled, fastpath
from ml.usecase import load_use_case


@pytest.mark.parametrize("name", ["fraud", "diabetes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_array_features_are_identical_to_build_features(name, seed):
    uc = load_use_case(name)
    raw = fastpath.sample_raw(uc, n=200, seed=seed)
    want = uc.build_features(pd.DataFrame(raw))
    got = uc.build_feature_arrays(raw)
    assert list(got) == uc.feature_names
    assert fastpath.same_features(got, want, uc.feature_names) is None
    for i in range(0, 200, 37):  # one row at a time, as a lone request
        one = uc.build_feature_arrays({c: v[i:i + 1] for c, v in raw.items()})
        assert fastpath.same_features(one, want.iloc[i:i + 1], uc.feature_names) is None
    assert fastpath.check_twin(uc, seed=seed) is None


def test_fraud_array_features_on_generated_transactions():
    uc = load_use_case("fraud")
    raw = uc.generate(uc.load_params(["data.rows=300", "data.seed=5"]).data)
    cols = {c: raw[c].tolist() for c in uc.request_columns}
    cols["timestamp"] = [t.to_pydatetime() for t in raw["timestamp"]]  # what a validated request carries
    assert fastpath.same_features(uc.build_feature_arrays(cols), uc.build_features(raw), uc.feature_names) is None


def test_a_twin_that_drifts_is_caught(monkeypatch):
    uc = load_use_case("diabetes")
    real = uc.build_feature_arrays

    def drifted(raw):
        out = real(raw)
        out["bmi"] = out["bmi"] + 1e-9
        return out
    monkeypatch.setattr(uc, "build_feature_arrays", drifted)
    problem = fastpath.check_twin(uc)
    assert problem is not None and problem.startswith("bmi: row 0")
    assert not fastpath.Features(uc).array_ok  # the engine then builds features with pandas


def _fitted(name: str, overrides: list[str]):
    uc = load_use_case(name)
    raw = pd.DataFrame(fastpath.sample_raw(uc, n=400, seed=11))
    X = uc.build_features(raw)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, len(X)) if uc.is_classification else rng.normal(150, 50, len(X))
    return uc, uc.estimator(uc.load_params(overrides).train).fit(X, y), X


@pytest.mark.parametrize("name, overrides", [
    ("fraud", ["train.max_iter=20"]), ("fraud", ["train.model_type=logistic_regression"]), ("diabetes", []),
])
def test_compiled_pipeline_scores_like_sklearn(name, overrides):
    uc, model, X = _fitted(name, overrides)
    has_proba = hasattr(model, "predict_proba")
    scorer = compiled.compile_scorer(model, uc.feature_names, has_proba)
    assert scorer is not None
    fresh = uc.build_features(pd.DataFrame(fastpath.sample_raw(uc, n=300, seed=99)))
    arrays = {c: fresh[c].to_numpy() for c in uc.feature_names}
    want = model.predict_proba(fresh)[:, 1] if has_proba else model.predict(fresh)
    assert np.allclose(scorer(arrays), want, rtol=1e-9, atol=1e-12)
    for i in (0, 17, 299):  # single rows
        assert np.allclose(scorer({c: v[i:i + 1] for c, v in arrays.items()}), want[i:i + 1], rtol=1e-9, atol=1e-12)
    if name == "fraud":  # a category the encoder never saw scores as "none of them", as in sklearn
        odd = {**{c: v[:1] for c, v in arrays.items()}, "merchant_category": np.array(["bitcoin"], dtype=object)}
        frame = pd.DataFrame(odd)
        assert np.allclose(scorer(odd), model.predict_proba(frame)[:, 1])


def test_what_does_not_compile_keeps_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    uc, model, X = _fitted("diabetes", ["train.model_type=hist_gradient_boosting", "train.max_iter=10"])
    assert compiled.compile_scorer(model, uc.feature_names, False) is None  # one step, fitted on a frame
    uc, model, X = _fitted("fraud", ["train.max_iter=10"])
    numeric = X.drop(columns=["merchant_category"])
    bare = LogisticRegression(max_iter=200).fit(numeric, np.arange(len(X)) % 2)
    assert compiled.compile_scorer(bare, list(numeric.columns), True) is None  # not a pipeline
    custom = Pipeline([("f", FunctionTransformer(lambda f: f * 2)), ("m", LogisticRegression(max_iter=200))])
    custom.fit(numeric, np.arange(len(X)) % 2)
    assert compiled.compile_scorer(custom, list(numeric.columns), True) is None  # user code might want a frame


def test_check_catches_a_scorer_that_differs():
    uc, model, X = _fitted("fraud", ["train.max_iter=10"])
    arrays = {c: X[c].to_numpy() for c in uc.feature_names}
    scorer = compiled.compile_scorer(model, uc.feature_names, True)

    def reference(cols):
        return model.predict_proba(pd.DataFrame(cols))[:, 1]
    assert compiled.check(scorer, reference, arrays) is None
    assert "differ" in compiled.check(lambda cols: scorer(cols) + 1e-6, reference, arrays)


def test_engine_fast_path_answers_and_logs_as_the_pandas_path(tmp_path, models, rows):
    """The same rows through an engine with and without the fast path: same answers, same logged features."""
    from ml.serving.endpoint_config import promote, update_config
    from ml.serving.engine import Engine
    from ml.serving.inference_log import read_table
    from tests.serving.serving_helpers import served

    answers, tables = {}, {}
    for fast in (True, False):
        cfg_dir, table = tmp_path / f"cfg-{fast}", tmp_path / f"table-{fast}"
        update_config(cfg_dir, lambda c: promote(c, served(models["v1"], "1")), by="test", reason="test")
        engine = Engine(cfg_dir, table, env="test", poll_s=60)
        try:
            assert engine.refresh() or engine.snapshot.get("champion") is not None
            champion = engine.snapshot.get("champion")
            assert (champion.compiled is not None) and engine.features.array_ok
            if not fast:
                champion.compiled, engine.features.array_ok = None, False
            # as the request schema hands them over: times parsed
            batch = [dict(r, transaction_id=f"t{i}", timestamp=datetime.fromisoformat(r["timestamp"]).replace(tzinfo=None))
                     for i, r in enumerate(rows[:20])]
            answers[fast] = [engine.score([dict(r)])[0] for r in batch[:5]] + engine.score([dict(r) for r in batch])
        finally:
            engine.close()
        tables[fast] = read_table(table).sort_values(["request_id", "timestamp"]).reset_index(drop=True)
    for a, b in zip(answers[True], answers[False]):
        assert a.keys() == b.keys() and a["transaction_id"] == b["transaction_id"]
        assert a["is_fraud"] == b["is_fraud"] and a["fraud_probability"] == pytest.approx(b["fraud_probability"], abs=1e-12)
    f_cols = [c for c in tables[False].columns if c.startswith("f_")]
    assert f_cols and [c for c in tables[True].columns if c.startswith("f_")] == f_cols
    pd.testing.assert_frame_equal(tables[True][f_cols], tables[False][f_cols])


def test_a_missing_request_value_takes_the_pandas_path(monkeypatch):
    """A None (a nullable column's missing value) is no kind of row the twin was checked on:
    `Features.build` gives `build_features`'s answer for it, not the array twin's."""
    uc = load_use_case("fraud")
    features = fastpath.Features(uc)
    assert features.array_ok
    row = {c: v[0] for c, v in fastpath.sample_raw(uc, n=1).items() if c in uc.request_columns}

    def unchecked(raw):
        raise AssertionError("the array twin got a row with a missing value")
    monkeypatch.setattr(uc, "build_feature_arrays", unchecked)
    got = features.build([dict(row, amount=None)], None).frame
    want = uc.build_features(pd.DataFrame([dict(row, amount=None)]))
    pd.testing.assert_frame_equal(got, want)
    assert np.isnan(got["amount"].iloc[0])


def test_a_one_hot_encoder_that_learned_a_missing_category_is_not_compiled():
    """sklearn encodes NaN as its own category; a plain `==` would not match NaN: keep sklearn's path."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = pd.DataFrame({"c": np.array(["a", np.nan, "b", np.nan, "a", "b"] * 5, dtype=object),
                      "x": np.arange(30, dtype="float64")})
    y = (X["c"].isna()).astype(int).to_numpy()
    model = Pipeline([("ct", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["c"])],
                                               remainder="passthrough")), ("m", LogisticRegression())]).fit(X, y)
    assert any(v != v for v in model.steps[0][1].named_transformers_["oh"].categories_[0])
    assert compiled.compile_scorer(model, ["c", "x"], True) is None
