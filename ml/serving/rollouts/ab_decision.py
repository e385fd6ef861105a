"""How an A/B test ends: the user's decision rule (`rollout.decision`) over labelled live requests.

Each arm's requests (champion, challenger) come from the endpoint's inference table since the test
started, joined by request id with the labels feed next to it (`ml.monitoring.tables`). Once both
arms have `min_samples` labelled requests, `metric` is computed per arm (`ml.usecase.metrics`, as
training computes it) and the difference is tested with a permutation test (shuffling which arm a
labelled request belongs to): the challenger wins if it is better by more than `margin` and the
p-value is below `alpha`. Otherwise — or without enough samples by `max_wait_s` — the champion
stays. The decision and its figures are written to `<endpoint dir>/decisions/` and returned.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import atomic_write
from ml.serving.endpoint_config import ABDecision
from ml.usecase.metrics import TASK_METRICS, higher_is_better, scores

PERMUTATIONS = 300


@dataclass
class Decision:
    winner: str                  # "challenger" | "champion"
    why: str
    metric: str
    samples: dict[str, int]      # labelled requests per arm
    values: dict[str, float]     # metric per arm
    difference: float | None     # challenger - champion, oriented so that > 0 is better
    p_value: float | None
    alpha: float
    margin: float
    champion_version: str
    challenger_version: str
    decided_at: float


def task_of(metric: str) -> str:
    for task, known in TASK_METRICS.items():
        if metric in known.names:
            return task
    raise ValueError(f"ab decision metric {metric!r} is not a metric of any task type "
                     f"({', '.join(m for t in TASK_METRICS.values() for m in t.names)})")


def _metric(task: str, metric: str, y: np.ndarray, s: np.ndarray) -> float:
    """`metric` alone (the permutation test computes it hundreds of times); the others as training scores them."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if metric == "roc_auc":
        return float(roc_auc_score(y, s))
    if metric == "pr_auc":
        return float(average_precision_score(y, s))
    if metric == "rmse":
        return float(np.sqrt(np.mean((y - s) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(y - s)))
    return scores(task, y, s, 0.5)[metric]


def permutation_p(task: str, metric: str, champ: pd.DataFrame, chall: pd.DataFrame, observed: float,
                  sign: float, seed: int = 0) -> float:
    """Share of random arm assignments whose (oriented) difference is at least the observed one."""
    y = np.concatenate([champ["label"].to_numpy(), chall["label"].to_numpy()])
    s = np.concatenate([champ["score"].to_numpy(), chall["score"].to_numpy()])
    n = len(chall)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(PERMUTATIONS):
        idx = rng.permutation(len(y))
        a, b = idx[:n], idx[n:]
        try:
            d = sign * (_metric(task, metric, y[a], s[a]) - _metric(task, metric, y[b], s[b]))
        except ValueError:  # a shuffle with one class only
            continue
        hits += d >= observed
    return (hits + 1) / (PERMUTATIONS + 1)


def decide(rule: ABDecision, arms: dict[str, pd.DataFrame], versions: dict[str, str]) -> Decision | None:
    """The decision over `arms` (role -> frame of `label`, `score`), or None while an arm lacks samples."""
    samples = {role: int(len(arms.get(role, ()))) for role in ("champion", "challenger")}
    if min(samples.values()) < rule.min_samples:
        return None
    task = task_of(rule.metric)
    sign = 1.0 if higher_is_better(task, rule.metric) else -1.0
    values = {role: _metric(task, rule.metric, arms[role]["label"].to_numpy(), arms[role]["score"].to_numpy())
              for role in ("champion", "challenger")}
    diff = sign * (values["challenger"] - values["champion"])
    p = permutation_p(task, rule.metric, arms["champion"], arms["challenger"], diff, sign)
    wins = diff > rule.margin and p < rule.alpha
    why = (f"challenger {rule.metric} {values['challenger']:.4f} vs champion {values['champion']:.4f} "
           f"({diff:+.4f} {'>' if diff > rule.margin else '<='} margin {rule.margin:g}; "
           f"p={p:.3f} {'<' if p < rule.alpha else '>='} alpha {rule.alpha:g}) over {samples['challenger']} / "
           f"{samples['champion']} labelled requests")
    return Decision("challenger" if wins else "champion", why, rule.metric, samples, values, diff, p, rule.alpha,
                    rule.margin, versions["champion"], versions["challenger"], time.time())


def no_decision(rule: ABDecision, samples: dict[str, int], versions: dict[str, str], waited: float) -> Decision:
    why = (f"not enough labelled requests after {waited:.0f} s: challenger {samples.get('challenger', 0)}, "
           f"champion {samples.get('champion', 0)} (need {rule.min_samples} each)")
    return Decision("champion", why, rule.metric, samples, {}, None, None, rule.alpha, rule.margin,
                    versions["champion"], versions["challenger"], time.time())


def arms(table_dir: Path, labels_dir: Path, versions: dict[str, str], since: float, metric: str) -> dict[str, pd.DataFrame]:
    """Each arm's labelled requests since `since`: role -> frame (label, score)."""
    from ml.monitoring.tables import read_labels
    from ml.serving.inference_log import read_table

    rows = read_table(table_dir, since)
    labels = read_labels(labels_dir)
    if rows.empty or labels.empty:
        return {}
    column = "probability" if task_of(metric) == "binary_classification" else "prediction"
    labels = labels.drop_duplicates("request_id", keep="last")[["request_id", "label"]]
    out = {}
    for role, version in versions.items():
        mine = rows[(rows["served_by"] == role) & (rows["model_version"].astype(str) == str(version))]
        joined = mine.merge(labels.assign(request_id=labels["request_id"].astype(str)), on="request_id", how="inner")
        out[role] = pd.DataFrame({"label": joined["label"].astype(float), "score": joined[column].astype(float)})
    return out


def write(endpoint_dir: Path, decision: Decision) -> Path:
    path = Path(endpoint_dir) / "decisions" / f"ab-v{decision.challenger_version}-{int(decision.decided_at)}.json"
    return atomic_write(path, json.dumps(asdict(decision), indent=2))
