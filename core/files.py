"""Writes a reader never sees half-done: write a sibling temp file, then rename over."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write(path: Path | str, data: str | bytes, mode: int | None = None) -> Path:
    """Replace `path` with `data` atomically (same directory, so the rename is atomic).

    Parents are created. `mode` (e.g. 0o600) is applied before the rename, so the file is
    never visible with looser permissions. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        if mode is not None:
            os.chmod(tmp, mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
