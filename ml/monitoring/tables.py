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


def _default_names() -> tuple[str | None, str | None]:
    """(id column, label) of the project's default use case, or (None, None) when it is ambiguous."""
    from ml.usecase import UseCaseError, load_use_case

    try:
        uc = load_use_case()
    except UseCaseError:
        return None, None
    return uc.id_column, uc.label


def read_labels(path: Path, id_column: str | None = None, label: str | None = None) -> pd.DataFrame:
    """The labels table as `request_id, label`; files may name them as the use case does
    (`id_column`, `label`; default: the project's default use case)."""
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
    if id_column is None and label is None and not {"request_id", "label"} <= set(df.columns):
        id_column, label = _default_names()
    if "request_id" not in df.columns and id_column in df.columns:
        df = df.rename(columns={id_column: "request_id"})
    if "label" not in df.columns and label in df.columns:
        df = df.rename(columns={label: "label"})
    return df[["request_id", "label"]].drop_duplicates("request_id", keep="last")
