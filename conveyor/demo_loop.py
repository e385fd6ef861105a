"""The demo's closed loop in prod, after the first model serves (issue #15).

1. drifted traffic arrives at the endpoint (the generator's `drift` knob: bigger amounts, more
   card-not-present and travel, more fraud) — as a client sends it, over HTTP;
2. its labels land later, as a partition of the labels feed next to the inference table;
3. `retraining_job` runs as its schedule would: monitoring flags the drift (the report shows it),
   the condition holds, `fresh_window` turns the labelled requests into raw rows, and
   `model_training_job` trains on them, beats the champion on that window and goes out through
   the canary — on live traffic, which keeps arriving while the job runs;
4. the old and the new model are scored on fresh drifted data the loop never saw.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd

from ml.serving.loadtest import Background

# The loop loads both models in this process to compare them; MLflow's per-download progress
# bars would interleave with the demo's own lines.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

DRIFT = 1.5          # the generator's knob for the shifted world
DRIFTED_ROWS = 4000  # labelled requests: the window the retrain learns from (20% of it held out). It must
                     # be big enough for params.yaml model_validation on the window (~125 held-out frauds
                     # here); tests/serving/test_retraining_e2e.py uses 2400 — 1200 left roc_auc at noise level
BATCH = 250


class Client:
    """POST /predict as the demo's client (the `ci` persona's serving token)."""

    def __init__(self, out: dict):
        self.url = f"{out['serving_url']}/predict"
        self.headers = {"Authorization": f"Bearer {out['credentials']['ci']['token']}"}
        self.http = httpx.Client(timeout=120)

    def send(self, raw: pd.DataFrame) -> list[dict]:
        from ml.serving.client import request_rows

        resp = self.http.post(self.url, json={"rows": request_rows(raw, "fraud")}, headers=self.headers)
        if resp.status_code != 200:
            raise RuntimeError(f"POST {self.url} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()


def drifted(rows: int, seed: int, tag: str) -> pd.DataFrame:
    from usecases.fraud.generate import generate_transactions

    raw = generate_transactions(rows, seed=seed, drift=DRIFT, days=7)
    raw["transaction_id"] = [f"{t}-{tag}" for t in raw["transaction_id"]]
    return raw


def send_drifted_traffic(out: dict, tag: str) -> pd.DataFrame:
    """The drifted requests, answered by the champion; returns them with their true labels."""
    client = Client(out)
    raw = drifted(DRIFTED_ROWS, seed=2026, tag=tag)
    for start in range(0, len(raw), BATCH):
        client.send(raw.iloc[start:start + BATCH])
    return raw


def land_labels(out: dict, raw: pd.DataFrame, tag: str) -> Path:
    """The ground truth of those requests, arriving later as one partition of the labels feed."""
    from core.contract import local_path
    from core.files import atomic_write
    from ml.monitoring.tables import labels_dir

    feed = labels_dir(local_path(out["storage"]["inference_table"]))
    part = feed / f"labels-{tag}.parquet"
    return atomic_write(part, raw[["transaction_id", "is_fraud"]].to_parquet(index=False))


def live_traffic(out: dict, tag: str) -> Background:
    """Drifted requests in the background (what a canary advances on) until the block ends. A batch
    that fails while the endpoint swaps revisions is counted in `failed`, and sending goes on."""
    client = Client(out)

    def send(i: int) -> int:
        raw = drifted(50, seed=5000 + i, tag=f"{tag}-live{5000 + i}")
        try:
            client.send(raw)
        except (RuntimeError, httpx.HTTPError) as exc:
            traffic.failed.append(str(exc)[:200])
            return 0
        return len(raw)

    traffic = Background(send, pause_s=0.25)
    return traffic


def compare_on_drifted(out: dict, model_name: str, old: str, new: str, metric: str = "pr_auc") -> tuple[float, float]:
    """(old, new) `metric` on fresh drifted transactions neither model trained on."""
    import mlflow.sklearn

    from ml.training.estimator import evaluate
    from ml.usecase import load_use_case

    uc = load_use_case("fraud")
    raw = drifted(5000, seed=777, tag="eval")
    data = uc.build_features(raw).assign(**{uc.label: raw[uc.label].to_numpy()})
    threshold = uc.load_params().train.threshold
    mlflow.set_tracking_uri(out["tracking_uri"])
    scores = []
    for version in (old, new):
        model = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
        scores.append(evaluate(uc, model, data, threshold)[metric])
    return scores[0], scores[1]


def run_tag() -> str:
    return f"{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:4]}"


def already_retrained(out: dict, model_name: str, version: str) -> bool:
    """Whether champion `version` was trained on a labelled traffic window (an earlier demo's loop)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if version in ("", "-"):
        return False
    client = MlflowClient(tracking_uri=out["tracking_uri"], registry_uri=out["tracking_uri"])
    try:
        run_id = client.get_model_version(model_name, version).run_id
        tags = client.get_run(run_id).data.tags if run_id else {}
    except MlflowException:
        return False
    return "training_windows" in tags.get("data_source", "")
