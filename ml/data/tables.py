"""Reading and writing the medallion tables (parquet) with compact string columns.

Why: pandas reads a parquet string column as one Python object per cell (~60-70 bytes for an
id); at 5M rows the id columns alone are ~700 MB, copied again by every sort, filter and GX
pass. Here an id-like string column is read as pandas' arrow-backed `str` dtype (`STR`:
pandas 3's default string dtype — `str` values, NaN for missing, as object columns had), one
contiguous buffer per column (~20 bytes a cell); see `read_frame` for the other string columns.

`write_frame` writes such a frame as the same parquet file an object-string frame gives (same
arrow types, same pandas metadata), so plain `pd.read_parquet` elsewhere still sees object
columns and a data version's DVC md5 does not depend on which dtype wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _strings(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def read_frame(path: str | Path, columns: list[str] | None = None, categories: bool = False) -> pd.DataFrame:
    """Parquet file `path` (only `columns`, when given) as a frame.

    A string column with more than half as many distinct values as rows (an id) is read as
    `STR`; one with fewer (a category, an entity key) as objects, pyarrow making one Python
    string per distinct value (8 bytes a row, less than `STR`, and user code gets the object
    column it always had) — or, with `categories`, as a pandas categorical (its values in
    first-seen order as categories; 1-2 bytes a row), for readers that only compare and count
    values (GX, an encoder) and would otherwise turn `STR` back into one object per row.
    """
    import pyarrow.parquet as pq

    return to_frame(pq.read_table(path, columns=columns), categories)


def to_frame(table, categories: bool = False) -> pd.DataFrame:
    """Arrow `table` as `read_frame` gives it (the frame of a parquet file is that of the table
    written to it: `read_frame(path)` is `to_frame(pq.read_table(path))`). The table is consumed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if not _strings(field.type):
            continue
        column = table.column(i)
        if _mostly_distinct(column):
            table = table.set_column(i, field.name, column.cast(pa.large_string()))  # -> STR
        elif categories:
            table = table.set_column(i, field.name, pc.dictionary_encode(column.combine_chunks()))
        else:
            table = table.set_column(i, field.name, column.cast(pa.string()))  # -> deduplicated objects
    return table.to_pandas(types_mapper={pa.large_string(): STR}.get, self_destruct=True)


def _mostly_distinct(column) -> bool:
    """Whether `column` holds more than half as many distinct values (null counting as one) as
    rows — decided exactly, mostly from a prefix: its first 55% of rows already holds more than
    half (an id), or so few that the rest could not make up the difference (a category, an entity
    key). Only a column in between is counted whole. Hashing strings is most of reading a
    string column: at 5M rows, seconds per column."""
    import pyarrow.compute as pc

    n = len(column)
    if not n:
        return False
    half, m = n // 2, (n * 11 + 19) // 20
    if m < n:
        seen = pc.count_distinct(column.slice(0, m), mode="all").as_py()
        if seen > half:  # the whole column holds at least these
            return True
        if seen + (n - m) <= half:  # even if every later row were new
            return False
    return pc.count_distinct(column, mode="all").as_py() > half


def write_frame(frame: pd.DataFrame, path: str | Path):
    """`frame` to parquet (no index), its `STR` / object string columns stored as an object
    column would be: arrow `string`, pandas metadata `unicode`/`object`. Returns the arrow table
    written (`to_frame` of it is `read_frame(path)`, without reading the file back)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    compact = {name for name in frame.columns if isinstance(frame[name].dtype, pd.StringDtype)}
    if compact:
        fields = [pa.field(f.name, pa.string(), f.nullable, f.metadata) if f.name in compact else f for f in table.schema]
        meta = json.loads(table.schema.metadata[b"pandas"])
        for col in meta["columns"]:
            if col["name"] in compact:
                col["pandas_type"], col["numpy_type"] = "unicode", "object"
        schema = pa.schema(fields, metadata={**table.schema.metadata, b"pandas": json.dumps(meta).encode()})
        table = table.cast(schema)
    pq.write_table(table, path)
    return table
