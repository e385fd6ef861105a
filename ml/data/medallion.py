"""Medallion steps run by `dvc repro` (see dvc.yaml): bronze → silver → gold, for one use case.

- bronze: raw rows exactly as they arrived (the use case's declared source, or a file landed
  for this run); no fixing, so data validation sees what the source really sent.
- silver: typed as declared (`dataset.columns`), de-duplicated on the id, ordered by time.
- gold: keys (id, entity key, timestamp) + the use case's features + label, ready for training.

Usage: python -m ml.data.medallion {bronze,silver,gold} [--use-case NAME] [--params params.yaml]

Run by the ingest task, a stage's command hands its work to that task's process
(`ml.data.stage_server`): the same `run_stage`, with the tables already imported and the table
the previous stage of that `dvc repro` wrote still in memory, instead of a new python reading it
back. DVC sees the same command, the same files and the same md5s either way.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # A stage command of the ingest task's `dvc repro`: hand it over (ml.data.stage_server) before
    # importing what running it here takes — pandas, the use case: ~1.5 s of CPU a stage.
    from ml.data.stage_server import hand_over_command

    hand_over_command(sys.argv[1:])  # exits with the stage's code when the ingest task's process ran it

import argparse
from pathlib import Path

import pandas as pd

from core.cli import guarded
from core.errors import ConveyorError
from ml.code import code_root
from ml.config import ConfigError, DataParams
from ml.data.tables import read_frame, to_frame, write_frame
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


def read_table(path: Path, compact: bool = False) -> pd.DataFrame:
    """A parquet or csv file as a frame; the suffix decides (`compact`: parquet strings as
    `tables.read_frame` reads them). SourceDataError when it is neither."""
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return read_frame(path) if compact else pd.read_parquet(path)
    except ValueError as exc:  # pandas and pyarrow parse errors: the file is not what its name says
        raise SourceDataError(f"cannot read {path}: {exc}") from exc


def _read_files(paths: list[Path]) -> pd.DataFrame:
    if len(paths) > 1:
        return pd.concat([read_table(p, compact=True) for p in paths], ignore_index=True)
    return read_table(paths[0], compact=True)


def bronze(uc: UseCase, p: DataParams, root: Path | None = None, cwd: Path | None = None) -> pd.DataFrame:
    """Raw rows: `p.source` when it names a file (relative to `cwd`, default the current
    directory), else the use case's declared source."""
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
        path = Path(p.source) if cwd is None else cwd / p.source
        if not path.is_file():
            raise ConfigError(f"data.source {p.source!r} is neither `generate` nor an existing file")
        df = read_table(path, compact=True)
    return df if p.subset >= 1.0 else df.sample(frac=p.subset, random_state=p.seed).sort_index()


def silver(uc: UseCase, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in uc.raw_columns if c not in df.columns]
    if missing:
        raise SourceDataError(f"raw table lacks required columns {missing} (expected the bronze schema {uc.raw_columns})")
    # A shallow copy: typed columns are new arrays, `df` is not modified; the others are shared
    # with `df` rather than copied (at 5M rows each whole-table copy is ~0.5 GB of peak memory).
    out = df.copy(deep=False)
    for name, col in uc.spec.dataset.columns.items():
        if col.type == "datetime":
            out[name] = pd.to_datetime(out[name], errors="coerce")
        elif col.type == "float":
            out[name] = pd.to_numeric(out[name], errors="coerce")
    duplicated = out.duplicated(subset=uc.id_column, keep="first").to_numpy()
    if duplicated.any():
        out = out[~duplicated]
    out.index = pd.RangeIndex(len(out))
    if uc.timestamp is not None and not out[uc.timestamp].is_monotonic_increasing:
        # the order `sort_values(kind="stable")` gives (missing last), taken once; a table that
        # arrives in time order (a generator, a partitioned source) is not copied at all
        out = out.take(out[uc.timestamp].sort_values(kind="stable").index.to_numpy())
        out.index = pd.RangeIndex(len(out))
    return out


def gold(uc: UseCase, df: pd.DataFrame) -> pd.DataFrame:
    feats = uc.build_features(df)
    keys = df[uc.key_columns]
    label = df[[uc.label]].astype("int64") if uc.is_classification else df[[uc.label]].astype("float64")
    return pd.concat([keys, feats[[f for f in uc.feature_names if f not in uc.key_columns]], label], axis=1)


def run_stage(stage: str, uc: UseCase, params: Path, root: Path, kept: dict | None = None) -> None:
    """Run `stage` in workspace `root` (`params` relative to it): read the previous stage's table,
    write this one's. `kept` (the stage server's): {path: (arrow table, file size)} of the table
    this process wrote last, in the same `dvc repro` — read from there instead of the file (the
    same frame: `tables.to_frame`), and replaced by this stage's table."""
    data = root / DATA_DIR
    data.mkdir(exist_ok=True)
    try:
        if stage == "bronze":
            frame, out = bronze(uc, uc.load_params(path=root / params).data, cwd=root), BRONZE
        elif stage == "silver":
            frame, out = silver(uc, _read(root / BRONZE, kept)), SILVER
        else:
            silver_rows = join_pinned(uc, _read(root / SILVER, kept), root / params)  # feature tables, as of each row
            frame, out = gold(uc, silver_rows), GOLD
            del silver_rows
    except ConveyorError as exc:
        raise StageFailed(f"{stage} stage: {exc}") from exc
    table = write_frame(frame, root / out)
    del frame
    if kept is not None:
        kept.clear()
        kept[root / out] = (table, (root / out).stat().st_size)


def _read(path: Path, kept: dict | None) -> pd.DataFrame:
    """The table at `path`: the one this process wrote there (`kept`, its size unchanged), else the file."""
    table, size = (kept or {}).pop(path, (None, None))
    if table is not None and path.stat().st_size == size:
        return to_frame(table)
    return read_frame(path)


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.data.medallion", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["bronze", "silver", "gold"])
    ap.add_argument("--use-case", default=None, help="the use case (default: the project's only one)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        uc = load_use_case(args.use_case)
    except ConveyorError as exc:
        raise StageFailed(f"{args.stage} stage: {exc}") from exc
    run_stage(args.stage, uc, Path(args.params), Path.cwd())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
