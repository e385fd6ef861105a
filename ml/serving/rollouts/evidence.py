"""What a rollout has seen: the challenger's requests in the endpoint's inference table.

Rollouts advance on evidence, not on the clock: every serving worker logs each answered row
(`served_by`, `model_version`, `latency_ms`, `timestamp`) to the inference table, so the deploy
step counts there what the challenger really answered — across every worker and restart — and
the figures it decides on are the ones anyone can re-read later. Rows the challenger failed on
are answered by the champion (and logged as such); the serving workers' `LiveGuard` judges
those errors and takes the challenger off on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.serving.inference_log import read_table


@dataclass(frozen=True)
class Evidence:
    requests: int        # rows the challenger answered since `since`
    p95_ms: float        # their logged latency (NaN without rows)
    total: int           # rows of every role since `since` (0: no traffic at all)


def challenger(table_dir: Path, version: str, since: float, role: str = "challenger") -> Evidence:
    """The challenger's (model `version`, answering as `role`) requests logged since `since`."""
    rows = read_table(table_dir, since)
    if rows.empty:
        return Evidence(0, float("nan"), 0)
    mine = rows[(rows["served_by"] == role) & (rows["model_version"].astype(str) == str(version))]
    p95 = float(np.percentile(mine["latency_ms"].astype(float), 95)) if len(mine) else float("nan")
    return Evidence(int(len(mine)), p95, int(len(rows)))
