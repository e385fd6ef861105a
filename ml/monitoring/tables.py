"""The metric table (append-only parquet parts) and the labels table (arrives late, keyed by request id)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pandas as pd

from core.files import atomic_write
from ml.monitoring.settings import MonitorError


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
    """The labels feed as `request_id, label` (+ the entity and time columns when it is keyed by those);
    files may name the columns as the use case does (`id_column`, `label`; default: the project's
    default use case). Parquet, CSV and JSON-lines partitions, read as one table."""
    path = Path(path)
    files = sorted(path.glob("*.parquet")) + sorted(path.glob("*.csv")) + sorted(path.glob("*.jsonl"))
    frames = []
    for f in files:
        try:
            if f.suffix == ".parquet":
                frames.append(pd.read_parquet(f))
            elif f.suffix == ".csv":
                frames.append(pd.read_csv(f))
            else:
                frames.append(pd.read_json(f, lines=True))
        except (ValueError, OSError) as exc:  # not the format its name says, or unreadable
            raise LabelsError(f"labels feed {f}: cannot read it: {exc}") from None
    if not frames:
        return pd.DataFrame(columns=["request_id", "label"])
    df = pd.concat(frames, ignore_index=True)
    if id_column is None and label is None and not {"request_id", "label"} <= set(df.columns):
        id_column, label = _default_names()
    if "request_id" not in df.columns and id_column in df.columns:
        df = df.rename(columns={id_column: "request_id"})
    if "label" not in df.columns and label in df.columns:
        df = df.rename(columns={label: "label"})
    if "label" not in df.columns:
        raise LabelsError(f"labels feed {path}: no label column (want `label` or {label!r}); columns: {list(df.columns)}")
    return df


class LabelsError(MonitorError):
    """A labels feed that cannot be joined: unreadable, unknown request ids, duplicates (exit 2)."""


def join_keys(labels: pd.DataFrame, table: pd.DataFrame, entity: str | None, timestamp: str | None) -> pd.DataFrame:
    """`labels` keyed by request id. A feed without `request_id` is keyed by entity + event time (the
    use case's `entity_key` and `timestamp`), matched exactly to the logged requests' raw fields."""
    if "request_id" in labels.columns:
        return labels[["request_id", "label"]]
    if not entity or not timestamp or not {entity, timestamp} <= set(labels.columns):
        raise LabelsError(f"labels feed has neither a request id column nor the entity + time columns "
                          f"({entity}, {timestamp}); columns: {list(labels.columns)}")
    logged_time = f"txn_{timestamp}" if f"txn_{timestamp}" in table.columns else timestamp
    requests = table[table["served_by"] != "shadow"][["request_id", entity, logged_time]].copy()
    requests["_t"] = pd.to_datetime(requests[logged_time], utc=True)
    keyed = labels.assign(_t=pd.to_datetime(labels[timestamp], utc=True))
    merged = keyed.merge(requests[["request_id", entity, "_t"]], on=[entity, "_t"], how="left")
    missing = merged["request_id"].isna()
    if missing.any():
        sample = ", ".join(f"{e}@{t}" for e, t in merged.loc[missing, [entity, timestamp]].head(3).itertuples(index=False))
        raise LabelsError(f"labels feed: {int(missing.sum())} of {len(labels)} labels match no logged request by "
                          f"({entity}, {timestamp}) (e.g. {sample})")
    return merged[["request_id", "label"]]


def check_labels(labels: pd.DataFrame, table: pd.DataFrame, where: Path | str = "labels feed") -> pd.DataFrame:
    """`labels` (request_id, label) if every request id is logged once in `table` and labelled once;
    else one `LabelsError` saying how many are wrong and which (a few of them)."""
    if labels.empty:
        return labels
    ids = labels["request_id"].astype(str)
    repeated = ids[ids.duplicated(keep=False)].unique()
    if len(repeated):
        raise LabelsError(f"{where}: {len(repeated)} request ids are labelled more than once "
                          f"(e.g. {', '.join(repeated[:3])}); a feed holds one label per request")
    known = set(table["request_id"].astype(str)) if len(table) else set()
    unknown = ids[~ids.isin(known)]
    if len(unknown):
        raise LabelsError(f"{where}: {len(unknown)} of {len(ids)} request ids are not in the inference table "
                          f"(e.g. {', '.join(unknown.head(3))})")
    if labels["label"].isna().any():
        raise LabelsError(f"{where}: {int(labels['label'].isna().sum())} labels are empty")
    return labels.assign(request_id=ids)


def joined_labels(feed: Path, table: pd.DataFrame, uc) -> pd.DataFrame:
    """The labels feed at `feed` for use case `uc`, keyed by request id (`join_keys`) and checked
    against the inference `table` (`check_labels`): what monitoring, a fresh training window and
    the `labelled_traffic` source all join. An empty feed is an empty frame; labels for an empty
    table are one `LabelsError`."""
    labels = read_labels(feed, uc.id_column, uc.label)
    if labels.empty:
        return labels
    where = f"labels feed {feed}"
    if table.empty:
        raise LabelsError(f"{where}: {len(labels)} labels but the inference table is empty")
    return check_labels(join_keys(labels, table, uc.spec.dataset.entity_key, uc.timestamp), table, where)
