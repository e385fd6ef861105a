"""Where a use case's raw rows come from: one module per source kind, named in `KINDS`.

`usecase.yml` `source` (or its entry under `source.targets` for the bundle target of the run)
names a kind; `snapshot` asks that kind for the rows and keeps the declared window, so that
`ingest` can land exactly that snapshot for DVC to version. A generator returns no snapshot:
its rows are made inside the DVC stage from params.yaml `data`. How to add a kind: README.md.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from ml.data.sources.base import Snapshot, SourceError, SourceKind, Where

if TYPE_CHECKING:
    from ml.usecase.contract import SourceSpec
    from ml.usecase.usecase import UseCase

# kind name -> "module:class" (a SourceKind subclass). One line per kind.
KINDS: dict[str, str] = {
    "generator": "ml.data.sources.generator:Generator",
    "file": "ml.data.sources.file:File",
    "partitions": "ml.data.sources.partitions:Partitions",
    "sql": "ml.data.sources.sql:Sql",
    "labelled_traffic": "ml.data.sources.labelled_traffic:LabelledTraffic",
}

__all__ = ["KINDS", "Snapshot", "SourceError", "SourceKind", "Where", "given", "kind", "problems", "snapshot"]


@cache
def kind(name: str) -> SourceKind:
    """The kind `name` of the registry; SourceError for a name it does not hold."""
    from core.errors import did_you_mean

    if name not in KINDS:
        raise SourceError(f"unknown source kind {name!r} (one of: {', '.join(KINDS)}){did_you_mean(name, KINDS)}")
    module, _, cls = KINDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def problems(spec: SourceSpec, columns: dict, timestamp: str | None) -> list[tuple[tuple, str]]:
    """(key path under the source, message) for each thing the declaration gets wrong."""
    from core.errors import did_you_mean

    if spec.kind not in KINDS:
        return [(("kind",), f"unknown source kind {spec.kind!r} (one of: {', '.join(KINDS)}){did_you_mean(spec.kind, KINDS)}")]
    found = kind(spec.kind).problems(spec)
    if spec.window is not None and not found:
        column = spec.window.column or timestamp
        if column is None:
            found.append((("window",), "a window needs an event-time column: set window.column or dataset.timestamp"))
        elif column not in columns:
            found.append((("window", "column"), f"window.column {column!r} is not a declared column{did_you_mean(column, columns)}"))
        elif columns[column].type != "datetime":
            found.append((("window", "column"), f"window.column {column!r} must be a datetime column"))
    return found


def snapshot(uc: UseCase, spec: SourceSpec, where: Where) -> Snapshot | None:
    """The rows of `spec` the run ingests (its window applied), or None for a generator."""
    return kind(spec.kind).snapshot(uc, spec, where)


LINEAGE = ".lineage.json"  # beside a file a task wrote for ingest (fresh_window): where its rows came from


def given(uc: UseCase, path: str, where: Where) -> Snapshot:
    """The rows of one file named by the run (`ingest --source`): a local path, `s3://…` or
    `{storage}/…` on the env's storage (what `fresh_window` hands a retrain, on any platform), read
    as a `file` source. A lineage file beside it (`<name>.lineage.json`) joins the manifest."""
    import json

    from ml.data.sources.base import SUFFIXES, filesystem, locate
    from ml.usecase.contract import SourceSpec

    if not path.endswith(SUFFIXES):
        raise SourceError(f"--source {path}: a .parquet or .csv file")
    snap = kind("file").snapshot(uc, SourceSpec(kind="file", path=path), where)
    fs, sidecar = filesystem(locate(path.rsplit(".", 1)[0] + LINEAGE, where))
    try:
        snap.manifest["lineage"] = json.loads(fs.cat_file(sidecar))
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise SourceError(f"lineage of --source {path}: not JSON ({exc})") from None
    return snap
