"""Writes a reader never sees half-done, and state only its owner can read.

`atomic_write` writes a sibling temp file, then renames over. `private_dir` makes a
directory (and any parent it has to create) owner-only: environment state, secrets and
storage live in such directories, so nothing under them is readable by other users
whatever mode a server gives its own files.
"""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def _is_private(mode: int | None) -> bool:
    return mode is not None and not mode & 0o077


def private_dir(path: Path | str) -> Path:
    """Make `path` a directory only its owner can enter (0700) and return it.

    Missing parents are created 0700 as well; parents that already exist are left as they
    are (they may be the user's own folders). An existing `path` is tightened to 0700.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # exist_ok: another writer raced us
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode passes through the umask; chmod does not
    return path


def make_tree_private(root: Path | str) -> None:
    """Tighten everything under `root` to owner-only: dirs 0700, files 0600 (for state created
    before it was kept private). Symlinks are not followed; sockets and fifos keep their mode."""
    root = Path(root)
    if not root.is_dir():
        return
    os.chmod(root, PRIVATE_DIR)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            entry = Path(folder) / name
            if not entry.is_symlink():
                os.chmod(entry, PRIVATE_DIR)
        for name in files:
            entry = Path(folder) / name
            if stat.S_ISREG(entry.lstat().st_mode):
                os.chmod(entry, PRIVATE_FILE)


def atomic_write(path: Path | str, data: str | bytes, mode: int | None = None) -> Path:
    """Replace `path` with `data` atomically (same directory, so the rename is atomic).

    Parents are created; for an owner-only `mode` (e.g. 0o600) the missing ones are created
    0700. `mode` is applied before the rename, so the file is never visible with looser
    permissions. Returns the path.
    """
    path = Path(path)
    if _is_private(mode) and not path.parent.exists():
        private_dir(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # created owner-only when a mode is asked for: the temp file may hold a secret too
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE if mode is not None else 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            os.chmod(tmp, mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
