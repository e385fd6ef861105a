"""What every source kind shares: the declaration checks, reading files on any storage, the window.

A kind says which keys it needs and allows (`needs`, `allows`) and how it reads rows (`read`);
`snapshot` then checks the rows against `dataset.columns`, keeps the window and orders them,
so the same source content always gives the same bytes (and so the same DVC data version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from core.errors import ConveyorError

if TYPE_CHECKING:
    import pandas as pd

    from ml.usecase.contract import SourceSpec, Window
    from ml.usecase.usecase import UseCase

KEYS = ("function", "params", "path", "url", "query", "window")
SUFFIXES = (".parquet", ".csv")  # the table files a file or partitions source reads (`read_file`)
STORAGE = "{storage}"  # a path starting with it lives on the env's storage (a directory or an s3:// prefix)


class SourceError(ConveyorError, ValueError):
    """The declared source cannot give its rows: missing, empty, unreadable, wrong schema, unreachable.
    Raised before anything is landed, so nothing already versioned changes."""


@dataclass(frozen=True)
class Where:
    """What a relative location means in this run: the project, and the env's storage root URI."""

    project: Path
    storage_root: str | None = None


@dataclass
class Snapshot:
    """The rows one ingest lands, with what they are (for the run's tags) and where each came from."""

    frame: pd.DataFrame
    description: str
    manifest: dict[str, Any] = field(default_factory=dict)


class SourceKind:
    """One kind of source. Subclasses set `name`, `needs`, `allows` and implement `read`."""

    name = ""
    needs: tuple[str, ...] = ()
    allows: tuple[str, ...] = ()

    def problems(self, spec: SourceSpec) -> list[tuple[tuple, str]]:
        """(key path, message) for each key this kind needs but lacks, or takes no part in."""
        out = [((key,), f"a {self.name} source names its `{key}`") for key in self.needs if not getattr(spec, key)]
        out += [((key,), f"a {self.name} source takes no `{key}`") for key in KEYS
                if key not in self.needs and key not in self.allows and getattr(spec, key) is not None]
        return out

    def read(self, uc: UseCase, spec: SourceSpec, where: Where) -> tuple[pd.DataFrame, str, dict] | None:
        """(rows, one-line description, manifest), or None when rows are made inside DVC (a generator)."""
        raise NotImplementedError

    def snapshot(self, uc: UseCase, spec: SourceSpec, where: Where) -> Snapshot | None:
        got = self.read(uc, spec, where)
        if got is None:
            return None
        frame, description, manifest = got
        require_columns(uc, frame, description)
        if frame.empty:
            raise SourceError(f"{description}: no rows")
        manifest["rows_read"] = len(frame)
        if spec.window is not None:
            frame, manifest["window"] = apply_window(frame, spec.window, uc, description)
        frame = ordered(frame, uc, spec.window)
        manifest["rows"] = len(frame)
        return Snapshot(frame, description, manifest)


def require_columns(uc: UseCase, frame: pd.DataFrame, what: str) -> None:
    """SourceError naming the declared columns `frame` lacks (extra ones are the raw suite's to judge)."""
    missing = [c for c in uc.raw_columns if c not in frame.columns]
    if missing:
        raise SourceError(f"{what} lacks declared columns {missing} (dataset.columns: {uc.raw_columns})")


def _event_time(frame: pd.DataFrame, column: str):
    import pandas as pd

    return pd.to_datetime(frame[column], errors="coerce", utc=True)  # naive times are taken as UTC


def apply_window(frame: pd.DataFrame, window: Window, uc: UseCase, what: str) -> tuple[pd.DataFrame, dict]:
    """The rows of the last `window.days` ending at the newest event (or now). Rows without a
    readable event time are kept: they belong to no window, and the raw suite reports them."""
    import pandas as pd

    column = window.column or uc.timestamp
    ts = _event_time(frame, column)
    if ts.isna().all():
        raise SourceError(f"{what}: column {column!r} holds no date/time values; cannot keep a window of it")
    end = ts.max() if window.anchor == "latest" else pd.Timestamp.now(tz="UTC")
    start = end - pd.Timedelta(days=window.days)
    kept = frame[ts.isna() | ((ts > start) & (ts <= end))]
    if kept.empty:
        raise SourceError(f"{what}: no rows in the window ({window.days:g} days to {end.isoformat()}; "
                          f"newest event {ts.max().isoformat()})")
    return kept, {"column": column, "days": window.days, "anchor": window.anchor,
                  "start": start.isoformat(), "end": end.isoformat()}


def ordered(frame: pd.DataFrame, uc: UseCase, window: Window | None) -> pd.DataFrame:
    """Rows by event time then id, so a source that returns the same rows in another order
    (a SQL query without ORDER BY, partitions listed differently) lands the same bytes."""
    column = (window.column if window else None) or uc.timestamp
    keys = [c for c in (column, uc.id_column) if c and c in frame.columns]
    if not keys:
        return frame.reset_index(drop=True)
    try:
        sort = frame.assign(**{"__ts": _event_time(frame, column)}) if column in keys else frame
        by = ["__ts" if k == column else k for k in keys]
        return sort.sort_values(by, kind="stable").drop(columns=["__ts"], errors="ignore").reset_index(drop=True)
    except TypeError:  # ids of mixed types do not sort: keep the source's order
        return frame.reset_index(drop=True)


# --- locations: the project, an absolute path, s3://, or the env's storage ------------------------

def locate(path: str, where: Where) -> str:
    """`path` as a local path or a URL: `{storage}/…` under the env's storage root, URLs as they
    are, relative paths under the project."""
    if path.startswith(STORAGE):
        if not where.storage_root:
            raise SourceError(f"{path}: {STORAGE} is the env's storage, known only inside a job task")
        location = where.storage_root.rstrip("/") + "/" + path[len(STORAGE):].lstrip("/")
        return urlparse(location).path if location.startswith("file:") else location  # a local env: a path
    if "://" in path:
        return path
    local = Path(path).expanduser()
    return str(local if local.is_absolute() else where.project / local)


def filesystem(location: str):
    """(fsspec filesystem, path on it) of a local path, file:// or s3:// URL (core.storage's S3 settings)."""
    import fsspec

    from core.storage import Blobs, StorageError, is_local

    if is_local(location):
        return fsspec.filesystem("file"), urlparse(location).path if location.startswith("file:") else location
    try:
        blobs = Blobs(location)
    except StorageError as exc:
        raise SourceError(str(exc)) from None
    return blobs.fs, blobs.root


def storage_error(exc: BaseException) -> bool:
    """Whether `exc` is the storage saying no (unreachable, denied, no bucket) rather than a bug."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore")


def read_file(fs, path: str, display: str) -> pd.DataFrame:
    """One parquet or csv file (the suffix decides) as a frame; SourceError when it cannot be."""
    import pandas as pd

    try:
        with fs.open(path, "rb") as fh:
            return pd.read_csv(fh) if path.endswith(".csv") else pd.read_parquet(fh)
    except FileNotFoundError:
        raise SourceError(f"{display}: no such file") from None
    except (ValueError, UnicodeDecodeError) as exc:  # pandas and pyarrow parse errors are ValueErrors
        raise SourceError(f"cannot read {display}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except Exception as exc:
        if storage_error(exc):
            raise SourceError(f"cannot read {display}: {exc}") from None
        raise
