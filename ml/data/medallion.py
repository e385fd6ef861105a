"""Medallion steps run by `dvc repro` (see dvc.yaml): bronze → silver → gold, for one use case.

- bronze: raw rows exactly as they arrived (the use case's declared source, or a file landed
  for this run); no fixing, so data validation sees what the source really sent.
- silver: typed as declared (`dataset.columns`), de-duplicated on the id, ordered by time.
- gold: keys (id, entity key, timestamp) + the use case's features + label, ready for training.

Usage: python -m ml.data.medallion {bronze,silver,gold} [--use-case NAME] [--params params.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from core.cli import guarded
from core.errors import ConveyorError
from ml.code import code_root
from ml.config import ConfigError, DataParams
from ml.features.lookups import join_pinned
from ml.usecase import UseCase, load_use_case

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


def _read_files(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([read_table(p) for p in paths], ignore_index=True) if len(paths) > 1 else read_table(paths[0])


def bronze(uc: UseCase, p: DataParams, root: Path | None = None) -> pd.DataFrame:
    """Raw rows: `p.source` when it names a file, else the use case's declared source."""
    if p.source in ("", "generate"):
        if uc.spec.source.kind == "generator":
            df = uc.generate(p)
            if p.rows is not None:  # asked for rows × subset already
                return df
        else:
            files = uc.source_files(root or code_root())  # the running (in a job run: deployed) code's files
            if not files:
                raise SourceDataError(f"use case {uc.name!r}: source.path {uc.spec.source.path!r} holds no parquet/csv file")
            df = _read_files(files)
    else:
        path = Path(p.source)
        if not path.is_file():
            raise ConfigError(f"data.source {p.source!r} is neither `generate` nor an existing file")
        df = read_table(path)
    return df if p.subset >= 1.0 else df.sample(frac=p.subset, random_state=p.seed).sort_index()


def silver(uc: UseCase, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in uc.raw_columns if c not in df.columns]
    if missing:
        raise SourceDataError(f"raw table lacks required columns {missing} (expected the bronze schema {uc.raw_columns})")
    out = df.copy()
    for name, col in uc.spec.dataset.columns.items():
        if col.type == "datetime":
            out[name] = pd.to_datetime(out[name], errors="coerce")
        elif col.type == "float":
            out[name] = pd.to_numeric(out[name], errors="coerce")
    out = out.drop_duplicates(subset=uc.id_column, keep="first")
    if uc.timestamp is not None:
        out = out.sort_values(uc.timestamp, kind="stable")
    return out.reset_index(drop=True)


def gold(uc: UseCase, df: pd.DataFrame) -> pd.DataFrame:
    feats = uc.build_features(df)
    keys = df[uc.key_columns]
    label = df[[uc.label]].astype("int64") if uc.is_classification else df[[uc.label]].astype("float64")
    return pd.concat([keys, feats[[f for f in uc.feature_names if f not in uc.key_columns]], label], axis=1)


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.data.medallion", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["bronze", "silver", "gold"])
    ap.add_argument("--use-case", default=None, help="the use case (default: the project's only one)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        uc = load_use_case(args.use_case)
        DATA_DIR.mkdir(exist_ok=True)
        if args.stage == "bronze":
            bronze(uc, uc.load_params(path=args.params).data).to_parquet(BRONZE, index=False)
        elif args.stage == "silver":
            silver(uc, pd.read_parquet(BRONZE)).to_parquet(SILVER, index=False)
        else:
            silver_rows = join_pinned(uc, pd.read_parquet(SILVER), Path(args.params))  # feature tables, as of each row
            gold(uc, silver_rows).to_parquet(GOLD, index=False)
    except ConveyorError as exc:
        raise StageFailed(f"{args.stage} stage: {exc}") from exc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
