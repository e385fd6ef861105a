"""HTML monitoring report: drift per feature over windows, distributions, champion vs challenger."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime

import pandas as pd


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _drift_over_windows(metrics: pd.DataFrame, metric: str, threshold: float) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    sub = metrics[(metrics["metric"] == metric) & (metrics["served_by"] == "all")]
    for feature, g in sub.groupby("feature"):
        ax.plot(g["window"], g["value"], marker="o", label=feature)
    ax.axhline(threshold, color="red", linestyle="--", label="threshold")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("window")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def _distributions(reference: pd.DataFrame, latest: pd.DataFrame) -> str:
    import matplotlib.pyplot as plt

    from ml.monitoring.drift import is_numeric

    features = list(reference.columns)  # the model's features: the reference holds exactly them
    fig, axes = plt.subplots(2, max(1, (len(features) + 1) // 2), figsize=(12, 5), squeeze=False)
    for ax, f in zip(axes.flat, features):
        if is_numeric(reference[f]):
            lo, hi = reference[f].quantile([0.005, 0.995])
            ax.hist(reference[f].clip(lo, hi), bins=30, alpha=0.5, density=True, label="reference")
            ax.hist(latest[f].astype(float).clip(lo, hi), bins=30, alpha=0.5, density=True, label="latest window")
        else:
            r = reference[f].astype(str).value_counts(normalize=True)
            c = latest[f].astype(str).value_counts(normalize=True).reindex(r.index, fill_value=0)
            pd.DataFrame({"reference": r, "latest": c}).plot.bar(ax=ax, legend=False, fontsize=6)
        ax.set_title(f, fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _quality_over_windows(metrics: pd.DataFrame, metric: str) -> str | None:
    """Quality from joined labels per window and model (None when no window had enough labels)."""
    import matplotlib.pyplot as plt

    sub = metrics[(metrics["metric"] == metric) & (metrics["served_by"] != "all")]
    if sub.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    for role, g in sub.groupby("served_by"):
        ax.plot(g["window"], g["value"], marker="o", label=role)
    threshold = sub["threshold"].dropna()
    if len(threshold):
        ax.axhline(float(threshold.iloc[-1]), color="red", linestyle="--", label="threshold")
    ax.set_xlabel("window")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    return _png(fig)


def render(env: str, metrics: pd.DataFrame, windows: pd.DataFrame, reference: pd.DataFrame,
           latest_features: pd.DataFrame | None, thresholds, reference_from: str = "", labelled: int = 0) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<html><head><meta charset='utf-8'><title>Monitoring — {html.escape(env)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.bad{background:#fdd}</style></head><body>",
             f"<h1>Model monitoring — {html.escape(env)}</h1><p>generated {now}; "
             f"{len(windows)} windows, {int(windows['violated'].sum()) if len(windows) else 0} violating; "
             f"{labelled} labelled requests</p>"]
    if reference_from:
        parts.append(f"<p>reference: {html.escape(reference_from)}</p>")
    if windows.empty:
        parts.append("<p>No inference traffic yet.</p></body></html>")
        return "".join(parts)
    parts.append("<h2>Windows</h2><table><tr><th>window</th><th>requests</th><th>models</th><th>violation</th></tr>")
    for _, w in windows.iterrows():
        cls = " class='bad'" if w["violated"] else ""
        parts.append(f"<tr{cls}><td>{w['window']}</td><td>{w['n']}</td><td>{html.escape(str(w['model_versions']))}</td>"
                     f"<td>{html.escape(w['reasons'] or 'none')}</td></tr>")
    parts.append("</table>")
    for metric in ("psi", "js", "ks"):
        parts.append(f"<h2>{metric.upper()} per feature</h2><img src='{_drift_over_windows(metrics, metric, getattr(thresholds, metric))}'>")
    for metric in ("roc_auc", "pr_auc", "rmse", "mae"):
        img = _quality_over_windows(metrics, metric)
        if img:
            parts.append(f"<h2>{metric} from labels, per model</h2><img src='{img}'>")
    if latest_features is not None and len(latest_features):
        parts.append(f"<h2>Reference vs latest window</h2><img src='{_distributions(reference, latest_features)}'>")
    cmp = metrics[(metrics["served_by"] != "all")]
    if len(cmp):
        last = cmp[cmp["window"] == cmp["window"].max()].pivot_table(index="metric", columns="served_by", values="value")
        parts.append("<h2>Champion vs challenger (latest window)</h2>" + last.round(4).to_html())
    parts.append("</body></html>")
    return "".join(parts)
