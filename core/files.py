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
        # created owner-only when a mode is asked for: the temp file may hold a secret too
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            os.chmod(tmp, mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
