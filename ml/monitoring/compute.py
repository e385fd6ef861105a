"""Window the inference table and compute every monitoring metric for each window.

Output is one long frame (one row per window × metric × feature × served_by) so the
metric table stays appendable and easy to plot, plus one summary row per window saying
whether it violates a threshold and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.monitoring import drift
from ml.monitoring.settings import MonitorSettings

TRAFFIC = ("champion", "challenger")


def inference_features(table: pd.DataFrame, features: list[str] | None = None) -> pd.DataFrame:
    """The model features as logged by the service (`f_<name>` columns) under their plain names
    (`features`, default: every logged one)."""
    features = features if features is not None else [c[2:] for c in table.columns if c.startswith("f_")]
    return pd.DataFrame({f: table[f"f_{f}"] for f in features}, index=table.index)


def assign_windows(traffic: pd.DataFrame, settings: MonitorSettings) -> pd.DataFrame:
    cfg = settings.config
    traffic = traffic.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if cfg.window_rows:
        traffic["window"] = np.arange(len(traffic)) // cfg.window_rows
    else:
        ts = pd.to_datetime(traffic["timestamp"], unit="s", utc=True)
        traffic["window"] = ((ts - ts.min()).dt.total_seconds() // (cfg.window_minutes * 60)).astype(int)
    sizes = traffic.groupby("window").size()
    keep = sizes[sizes >= cfg.min_window_rows].index[-cfg.max_windows:]
    return traffic[traffic["window"].isin(keep)]


# the quality metrics monitored per task type (ml.usecase.metrics computes them as training does)
QUALITY = {"binary_classification": ("roc_auc", "pr_auc"), "regression": ("rmse", "mae")}


def score_column(task: str) -> str:
    """The inference table's column a model's quality is judged on: the probability, or the predicted value."""
    return "probability" if task == "binary_classification" else "prediction"


def _quality(task: str, y: pd.Series, p: pd.Series) -> dict[str, float]:
    from ml.usecase.metrics import scores

    if task == "binary_classification" and y.astype(int).nunique() < 2:
        return {}
    y = y.astype(int) if task == "binary_classification" else y.astype(float)
    found = scores(task, y.to_numpy(), p.astype(float).to_numpy(), 0.5)
    return {m: found[m] for m in QUALITY[task]}


# the quality bounds monitored: metric -> (its `Thresholds` field, the side that violates it)
QUALITY_BOUNDS = {"roc_auc": ("min_roc_auc", "<"), "rmse": ("max_rmse", ">")}


def _quality_bound(metric: str, th) -> tuple[float | None, str]:
    """(the threshold `metric` is held to or None, the comparison a violating value makes with it)."""
    field, side = QUALITY_BOUNDS.get(metric, (None, ""))
    return (getattr(th, field) if field else None), side


def _violates(value: float, limit: float | None, side: str) -> bool:
    return limit is not None and (value < limit if side == "<" else value > limit)  # NaN never violates


def compute(table: pd.DataFrame, reference: pd.DataFrame, settings: MonitorSettings,
            reference_predictions: pd.Series | None = None, labels: pd.DataFrame | None = None,
            task: str = "binary_classification") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, windows) for the inference `table` against `reference` features (its columns are
    the features monitored: the use case's feature columns). `labels` (request_id, label), joined by
    request id, give each window's quality per model (`QUALITY[task]`)."""
    score = score_column(task)
    th = settings.thresholds
    features = list(reference.columns)
    rows: list[dict] = []
    windows: list[dict] = []
    if table.empty:
        return pd.DataFrame(rows), pd.DataFrame(windows)
    if labels is not None and len(labels):
        table = table.merge(labels, on="request_id", how="left")
    traffic = assign_windows(table[table["served_by"].isin(TRAFFIC)].copy(), settings)
    shadow = table[table["served_by"] == "shadow"]
    for w, win in traffic.groupby("window"):
        start, end = float(win["timestamp"].min()), float(win["timestamp"].max())
        base = {"window": int(w), "window_start": start, "window_end": end, "n": int(len(win))}
        reasons: list[str] = []
        feats = inference_features(win, features)
        drifted = []
        for f in features:
            ref = reference[f]
            cur = feats[f]
            values = {"psi": drift.psi(ref, cur), "js": drift.js(ref, cur), "ks": drift.ks(ref, cur)[0]}
            bad = [m for m, v in values.items() if not np.isnan(v) and v > getattr(th, m)]
            if bad:
                drifted.append(f"{f} ({', '.join(f'{m}={values[m]:.2f}' for m in bad)})")
            for m, v in values.items():
                rows.append({**base, "metric": m, "feature": f, "served_by": "all", "value": v,
                             "threshold": getattr(th, m), "violated": m in bad})
        if len(drifted) >= th.min_drifted_features:
            reasons.append("feature drift: " + "; ".join(drifted))
        if reference_predictions is not None and len(reference_predictions):
            v = drift.psi(reference_predictions, win[score].astype(float))
            rows.append({**base, "metric": "prediction_psi", "feature": score, "served_by": "all",
                         "value": v, "threshold": th.prediction_psi, "violated": v > th.prediction_psi})
            if v > th.prediction_psi:
                reasons.append(f"prediction drift: psi={v:.2f}")
        # champion vs challenger (and the shadow scoring the same requests)
        ids = set(win["request_id"])
        groups = {role: g for role, g in win.groupby("served_by")}
        sh = shadow[shadow["request_id"].isin(ids)]
        if len(sh):
            groups["shadow"] = sh
        for role, g in groups.items():
            stats = {"requests": len(g), "latency_p95_ms": g["latency_ms"].quantile(0.95)}
            if task == "binary_classification":
                stats.update(mean_probability=g["probability"].mean(), positive_rate=g["prediction"].mean())
            else:
                stats["mean_prediction"] = g["prediction"].astype(float).mean()
            if "label" in g.columns:
                labeled = g.dropna(subset=["label"])
                stats["labeled"] = len(labeled)
                if len(labeled) >= settings.config.min_labels:
                    stats.update(_quality(task, labeled["label"], labeled[score]))
            for m, v in stats.items():
                limit, side = _quality_bound(m, th)
                violated = role != "shadow" and _violates(v, limit, side)
                rows.append({**base, "metric": m, "feature": "", "served_by": role, "value": float(v),
                             "threshold": np.nan if limit is None else limit, "violated": violated})
                if violated:
                    reasons.append(f"{role} quality: {m}={v:.3f} {side} {limit}")
        versions = ",".join(sorted(win["model_version"].astype(str).unique()))
        windows.append({**base, "model_versions": versions, "violated": bool(reasons), "reasons": " | ".join(reasons)})
    return pd.DataFrame(rows), pd.DataFrame(windows)
