"""The metric table (append-only parquet parts) and the labels table (arrives late, keyed by request id)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pandas as pd

from core.files import atomic_write


def append_metrics(metric_dir: Path, frame: pd.DataFrame, name: str = "drift") -> Path:
    """Add `frame` as one new part of table `name`; readers never see a half-written part."""
    path = Path(metric_dir) / name / f"part-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
    return atomic_write(path, frame.to_parquet(index=False))


def read_metrics(metric_dir: Path, name: str = "drift") -> pd.DataFrame:
    parts = sorted((Path(metric_dir) / name).glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def labels_dir(inference_table: Path) -> Path:
    """Labels live next to the inference table: `<tables>/labels/` (request_id, label[, labeled_at])."""
    return Path(inference_table).parent / "labels"


def read_labels(path: Path) -> pd.DataFrame:
    files = sorted(Path(path).glob("*.parquet")) + sorted(Path(path).glob("*.csv")) + sorted(Path(path).glob("*.jsonl"))
    frames = []
    for f in files:
        if f.suffix == ".parquet":
            frames.append(pd.read_parquet(f))
        elif f.suffix == ".csv":
            frames.append(pd.read_csv(f))
        else:
            frames.append(pd.read_json(f, lines=True))
    if not frames:
        return pd.DataFrame(columns=["request_id", "label"])
    df = pd.concat(frames, ignore_index=True)
    if "request_id" not in df.columns and "transaction_id" in df.columns:
        df = df.rename(columns={"transaction_id": "request_id"})
    if "label" not in df.columns and "is_fraud" in df.columns:
        df = df.rename(columns={"is_fraud": "label"})
    return df[["request_id", "label"]].drop_duplicates("request_id", keep="last")
