"""The diabetes monitor's thresholds (resources/diabetes.yml) on the traffic a clinic sends.

Windows of that endpoint are small (about a hundred patients an hour), and PSI / JS / KS of a
hundred rows against the 442 of the reference are noisy: at the platform defaults (0.2 each) a
window of ordinary patients is flagged. The thresholds in resources/diabetes.yml are sized for
the window (`min_window_rows`): ordinary patients pass, a shifted population is flagged and
the reason names the feature. The windows go through the monitor's own `compute`, with the
prediction drift of the use case's regressor (its predicted progression is what the inference
table logs as the score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.paths import project_dir
from ml.monitoring.compute import compute
from ml.monitoring.settings import load_monitor_settings
from ml.usecase import load_use_case

HOUR = 3600.0


@pytest.fixture(scope="module")
def setup():
    uc = load_use_case("diabetes")
    raw = uc.generate(uc.load_params().data.model_copy(update={"rows": 5000, "subset": 1.0}))  # all 442 patients
    reference = uc.build_features(raw)
    params = uc.load_params()
    model = uc.estimator(params.train).fit(reference, raw[uc.label])  # the use case's own regressor (Ridge)
    settings = load_monitor_settings(project_dir() / "resources" / "diabetes.yml")
    return {"uc": uc, "reference": reference, "model": model, "settings": settings}


def _table(model, windows: list[pd.DataFrame]) -> pd.DataFrame:
    """An inference table: one hour per window, the features as the service logs them (`f_<name>`)."""
    parts = []
    for w, feats in enumerate(windows):
        n = len(feats)
        scores = model.predict(feats)
        part = pd.DataFrame({f"f_{c}": feats[c].to_numpy() for c in feats.columns})
        part["timestamp"] = w * HOUR + np.linspace(0, HOUR * 0.9, n)
        part["request_id"] = [f"w{w}-{i}" for i in range(n)]
        part["served_by"] = "champion"
        part["model_version"] = "1"
        part["probability"] = scores
        part["prediction"] = scores
        part["latency_ms"] = 5.0
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _patients(reference: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` ordinary patients: drawn (with replacement) from the dataset's population."""
    return reference.sample(n, replace=True, random_state=seed).reset_index(drop=True)


def _run(setup, windows):
    s = setup
    ref_pred = pd.Series(s["model"].predict(s["reference"]))
    _, summary = compute(_table(s["model"], windows), s["reference"], s["settings"], reference_predictions=ref_pred)
    return summary


def test_ordinary_patients_do_not_violate(setup):
    n = setup["settings"].config.min_window_rows
    windows = [_patients(setup["reference"], n + 20 * (k % 3), seed=k) for k in range(24)]
    summary = _run(setup, windows)
    assert len(summary) == 24
    assert not summary["violated"].any(), summary[summary["violated"]][["window", "n", "reasons"]].to_string()


def test_the_platform_defaults_flag_them(setup):
    """Why the use case sets its own thresholds and window size: at the defaults (0.2 each, windows
    from 50 rows) windows of 60 ordinary patients — the first hour of a clinic — mostly violate."""
    from ml.monitoring.settings import MonitorConfig, Thresholds

    defaults = setup["settings"].model_copy(update={"thresholds": Thresholds(), "config": MonitorConfig()})
    summary = _run(dict(setup, settings=defaults), [_patients(setup["reference"], 60, seed=k) for k in range(8)])
    assert len(summary) == 8 and summary["violated"].sum() >= 5


@pytest.mark.parametrize("label, shift, feature", [
    ("heavier patients (bmi +15%)", lambda f: f.assign(bmi=f["bmi"] * 1.15), "bmi"),
    ("older patients (+10 years)", lambda f: f.assign(age=f["age"] + 10), "age"),
])
def test_a_shifted_population_is_flagged_naming_the_feature(setup, label, shift, feature):
    n = setup["settings"].config.min_window_rows
    normal = [_patients(setup["reference"], n, seed=100 + k) for k in range(2)]
    shifted = [shift(_patients(setup["reference"], n, seed=200 + k)) for k in range(4)]
    summary = _run(setup, normal + shifted).set_index("window")
    assert summary["violated"].tolist() == [False, False, True, True, True, True], label
    assert all(f"feature drift: {feature} (" in r or f"; {feature} (" in r for r in summary["reasons"].iloc[2:]), \
        summary["reasons"].tolist()
