"""Medallion steps run by `dvc repro` (see dvc.yaml): bronze → silver → gold.

- bronze: raw transactions exactly as they arrived (generated or landed from a file);
  no fixing, so data validation sees what the source really sent.
- silver: typed, de-duplicated, ordered by time.
- gold: model features (ml/features.py) + label + keys, ready for training.

Usage: python -m ml.data.medallion {bronze,silver,gold} [--params params.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from core.cli import guarded
from core.errors import ConveyorError
from ml.config import ConfigError, load_params
from ml.data.generate import RAW_COLUMNS, generate_transactions
from ml.features import FEATURES, LABEL, build_features

DATA_DIR = Path("data")
BRONZE = DATA_DIR / "bronze.parquet"
SILVER = DATA_DIR / "silver.parquet"
GOLD = DATA_DIR / "gold.parquet"
LANDING = DATA_DIR / "landing"


class SourceDataError(ConveyorError, ValueError):
    """The raw data cannot become a medallion table: unreadable file, missing columns."""


class StageFailed(ConveyorError):
    """A stage stopped on a user error; the message names the stage (dvc repro shows it)."""


def read_table(path: Path) -> pd.DataFrame:
    """A parquet or csv file as a frame; the suffix decides. SourceDataError when it is neither."""
    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except ValueError as exc:  # pandas and pyarrow parse errors: the file is not what its name says
        raise SourceDataError(f"cannot read {path}: {exc}") from exc


def bronze(source: str, rows: int, seed: int, drift: float, days: int, start: str, subset: float = 1.0) -> pd.DataFrame:
    if source == "generate":
        return generate_transactions(max(10, int(round(rows * subset))), seed=seed, drift=drift, days=days, start=start)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"data.source {source!r} is neither `generate` nor an existing file")
    df = read_table(path)
    return df if subset >= 1.0 else df.sample(frac=subset, random_state=seed).sort_index()


def silver(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RAW_COLUMNS if c not in df.columns]
    if missing:
        raise SourceDataError(f"raw table lacks required columns {missing} (expected the bronze schema {RAW_COLUMNS})")
    out = df.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], errors="coerce")
    for col in ("amount", "home_lat", "home_lon", "txn_lat", "txn_lon"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    out = out.drop_duplicates(subset="transaction_id", keep="first")
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def gold(df: pd.DataFrame) -> pd.DataFrame:
    feats = build_features(df)
    keys = df[["transaction_id", "customer_id", "timestamp"]]
    return pd.concat([keys, feats[FEATURES], df[[LABEL]].astype("int64")], axis=1)


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.data.medallion", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["bronze", "silver", "gold"])
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        p = load_params(args.params).data
        DATA_DIR.mkdir(exist_ok=True)
        if args.stage == "bronze":
            bronze(p.source, p.rows, p.seed, p.drift, p.days, p.start, p.subset).to_parquet(BRONZE, index=False)
        elif args.stage == "silver":
            silver(pd.read_parquet(BRONZE)).to_parquet(SILVER, index=False)
        else:
            gold(pd.read_parquet(SILVER)).to_parquet(GOLD, index=False)
    except ConveyorError as exc:
        raise StageFailed(f"{args.stage} stage: {exc}") from exc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
