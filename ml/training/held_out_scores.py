"""A model's scores on a data version's held-out rows, computed once per job run and reused.

`train` scores the challenger on the held-out rows for its test metrics; `validate_model` and
`deploy_model` judge the same model on the same rows. Instead of scoring again (at 5M rows,
~20 s of `predict_proba` per task), `train` saves the scores here and the later tasks use them —
only when the saved key proves they are the scores of *this* model on *these* rows:

- the model: registered name, version and the MLflow run that logged it (`mv.run_id`; a
  registered model deleted and registered again restarts at version 1 with another run);
- the rows: data version, split (`test_fraction`, `seed`), row count, and a SHA-256 of every
  held-out row's id, timestamp, features and label, in order (`rows_digest`) — computed again
  by the reader from the rows it read, so a different data version, split or row order, or a
  change to how features are computed, does not match.

Anything else (no saved scores, another key, an unreadable file) means the reader scores the
model itself: the metrics are the same either way (`predict` is deterministic), only the time
differs. `validate_model` saves the champion's scores the same way, for `deploy_model`.
`train` keeps the held-out rows themselves too (`save_rows` / `held_out_rows`, below), so the
later tasks do not read gold and split it again.

Where: `<task values dir>/held_out_scores/<model>-v<version>.npz`, next to the run's task values
(a local directory on every platform: on kubernetes, the run's folder on the env's state volume),
so the scores live and go with the job run. Outside a job run (no task values dir) nothing is
saved and every task scores for itself.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import settings
from core.files import PRIVATE_FILE, atomic_write
from ml.training.estimator import predict, training_columns
from ml.usecase import UseCase

FOLDER = "held_out_scores"
FORMAT = 2  # bump when the key or the file changes shape: old files then never match


def rows_digest(uc: UseCase, rows: pd.DataFrame) -> str:
    """SHA-256 over each held-out row's id, timestamp, features and label, in row order: which
    rows they are (id, time) and what the scores (features) and the metrics (label) depend on.
    Numeric columns hash their bytes, categoricals their codes and categories, strings their
    text (nulls marked)."""
    columns = [c for c in dict.fromkeys((uc.id_column, uc.timestamp, *uc.feature_names, uc.label))
               if c and c in rows.columns]
    digest = hashlib.sha256(f"{len(rows)}".encode())
    for column in columns:
        _hash_column(digest, rows[column])
    return digest.hexdigest()


def _hash_column(digest, values: pd.Series) -> None:
    """Hash what the column holds, never how it is laid out: Arrow buffers of the same values
    differ with chunking and slicing (a slice keeps its parent's offsets; validity bitmaps carry
    padding bits), so two reads of the same rows would not match."""
    digest.update(f"\0{values.name}:{values.dtype}\0".encode())
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biufmM":
        digest.update(np.ascontiguousarray(values.to_numpy()).view(np.uint8))
        return
    if isinstance(values.dtype, pd.CategoricalDtype):
        digest.update(np.ascontiguousarray(values.cat.codes.to_numpy()).view(np.uint8))
        values = pd.Series(values.cat.categories)
    missing = pd.isna(values).to_numpy(dtype=bool)
    digest.update(np.packbits(missing).tobytes())
    text = values[~missing].astype(str).to_numpy(dtype=object)
    digest.update("\x1f".join(text).encode("utf-8", "surrogatepass"))


def key(uc: UseCase, params, model_name: str, version: str, model_run_id: str, data_version: str,
        rows: pd.DataFrame, digest: str | None = None) -> dict:
    """What a saved set of scores must match to be used (module docstring); `digest`: the
    `rows_digest` of `rows` when the caller has it (two models judged on the same rows)."""
    return {
        "format": FORMAT,
        "use_case": uc.name,
        "model": f"{model_name}/{version}",
        "model_run_id": model_run_id,
        "data_version": data_version,
        "split": {"test_fraction": params.split.test_fraction, "seed": params.split.seed},
        "rows": len(rows),
        "rows_sha256": digest or rows_digest(uc, rows),
    }


def _path(key: dict) -> Path | None:
    folder = settings.TASK_VALUES_DIR.get()
    if folder is None:
        return None
    name, version = key["model"].split("/")
    return Path(folder) / FOLDER / f"{name}-v{version}.npz"


def save(key: dict, scores: np.ndarray) -> Path | None:
    """Keep `scores` (the model's `predict` on the key's rows) for the later tasks of this job
    run; None outside a job run. One file written atomically: a reader sees all of it or none."""
    path = _path(key)
    if path is None:
        return None
    scores = np.asarray(scores, dtype="float64")
    if len(scores) != key["rows"]:
        raise ValueError(f"{len(scores)} scores for {key['rows']} rows")
    buf = io.BytesIO()
    np.savez(buf, scores=scores, key=np.array(json.dumps(key, sort_keys=True)))
    atomic_write(path, buf.getvalue(), PRIVATE_FILE)
    return path


def load(key: dict) -> np.ndarray | None:
    """The saved scores whose key equals `key`, else None (the caller scores the model itself)."""
    path = _path(key)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if json.loads(str(saved["key"])) != json.loads(json.dumps(key)):
                return None
            scores = saved["scores"]
    except (OSError, ValueError, KeyError):  # unreadable or foreign file: score again rather than fail
        return None
    return scores if scores.shape == (key["rows"],) else None


def scores_of(uc: UseCase, key: dict, rows: pd.DataFrame, load_model: Callable[[], Any]) -> tuple[np.ndarray, Any]:
    """(the model's scores on `rows`, the model or None): the saved scores when `key` matches —
    the model is then not even loaded — else `load_model()`'s `predict` on `rows`, saved under
    `key` for the tasks after this one."""
    saved = load(key)
    if saved is not None:
        print(f"  {key['model']}: held-out scores reused from earlier in this job run ({key['rows']} rows, same key)")
        return saved, None
    model = load_model()
    scores = predict(uc, model, rows)
    save(key, scores)
    return scores, model


def of_version(uc: UseCase, params, mv, data_version: str, rows: pd.DataFrame, digest: str) -> tuple[np.ndarray, Any]:
    """`scores_of` for registered version `mv` (an MLflow ModelVersion) on held-out `rows` of
    `data_version` (`digest`: their `rows_digest`, computed once per task for every model it
    judges); the model, when it had to be loaded, comes from the registry."""
    from ml.registry import load_model

    return scores_of(uc, key(uc, params, mv.name, mv.version, mv.run_id, data_version, rows, digest), rows,
                     lambda: load_model(mv.name, mv.version))


# --- the held-out rows themselves ------------------------------------------------------------
# `validate_model` and `deploy_model` need the rows too (labels, slice column, the champion's
# features): `train` keeps them next to the scores, as an uncompressed Arrow file (~0.1 s to read
# 1M rows where reading gold and splitting it again takes seconds), under a key of what decides
# which rows they are — use case, data version, split, columns. A reader takes them only when
# that key is equal to its own and their `rows_digest` is the one `train` recorded; else it reads
# gold and splits it itself.

def _rows_path(data_version: str) -> Path | None:
    folder = settings.TASK_VALUES_DIR.get()
    return None if folder is None else Path(folder) / FOLDER / f"rows-{data_version}.arrow"


def _rows_key(uc: UseCase, params, data_version: str) -> dict:
    return {"format": FORMAT, "use_case": uc.name, "data_version": data_version,
            "split": {"test_fraction": params.split.test_fraction, "seed": params.split.seed},
            "columns": training_columns(uc)}  # what `read_training_table` reads of gold


def save_rows(uc: UseCase, params, data_version: str, rows: pd.DataFrame, digest: str | None = None) -> Path | None:
    """Keep the held-out `rows` of `data_version` (as `ml.registry.held_out` gives them) for the
    later tasks of this job run; None outside a job run."""
    import pyarrow as pa

    path = _rows_path(data_version)
    if path is None:
        return None
    key = {**_rows_key(uc, params, data_version), "rows": len(rows), "rows_sha256": digest or rows_digest(uc, rows)}
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"conveyor_key": json.dumps(key, sort_keys=True).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    atomic_write(path, sink.getvalue().to_pybytes(), PRIVATE_FILE)
    return path


def load_rows(uc: UseCase, params, data_version: str) -> tuple[pd.DataFrame, str] | None:
    """(the held-out rows `train` kept for `data_version`, their `rows_digest`) when their key is
    this reader's and the rows hash to what `train` recorded; else None."""
    import pyarrow as pa

    from ml.data.tables import STR

    path = _rows_path(data_version)
    if path is None or not path.is_file():
        return None
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        saved = json.loads((table.schema.metadata or {}).get(b"conveyor_key", b"{}"))
        if {k: saved.get(k) for k in ("format", "use_case", "data_version", "split", "columns")} \
                != json.loads(json.dumps(_rows_key(uc, params, data_version))):
            return None
        rows = table.to_pandas(types_mapper={pa.large_string(): STR}.get)
    except (OSError, ValueError, KeyError, pa.ArrowException):  # unreadable or foreign file: read gold instead
        return None
    digest = rows_digest(uc, rows)
    if len(rows) != saved.get("rows") or digest != saved.get("rows_sha256"):
        return None
    return rows, digest


def held_out_rows(ctx, params, data_version: str, uc: UseCase) -> tuple[pd.DataFrame, str]:
    """(the held-out rows of `data_version`, their `rows_digest`): `train`'s of this job run when
    they match (`load_rows`), else read from gold and split (`ml.registry.held_out`)."""
    found = load_rows(uc, params, data_version)
    if found is not None:
        print(f"  held-out rows of data version {data_version} reused from earlier in this job run ({len(found[0])} rows)")
        return found
    from ml.registry import held_out

    rows = held_out(ctx, params, data_version, uc)
    return rows, rows_digest(uc, rows)
