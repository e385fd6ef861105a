"""A real full disk for tests: a tiny tmpfs mounted over a directory (needs root, or
CAP_SYS_ADMIN), filled up with a filler file until writes fail with ENOSPC.

`full_disk(path)` mounts it over `path` (what was there is hidden, not touched), fills it,
and yields a `Disk` whose `free()` gives the space back (the filler is deleted, the
mount stays). On exit the mount is detached and whatever was written to the tmpfs is copied
down into the real directory (appended to a file of the same name): records written while the
fault lasted are not lost with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root in a container that allows it)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    with tempfile.TemporaryDirectory() as d:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", d], capture_output=True).returncode:
            return False
        subprocess.run(["umount", d], check=True)
    return True


class Disk:
    def __init__(self, path: Path):
        self.path = path
        self.filler = path / ".filler"

    def fill(self) -> None:
        """Write zeros until the filesystem refuses (ENOSPC)."""
        chunk = b"\0" * 4096
        with open(self.filler, "ab", buffering=0) as fh:
            while True:
                try:
                    fh.write(chunk)
                except OSError:
                    break
        for small in (512, 64, 1):  # the last few bytes too
            with open(self.filler, "ab", buffering=0) as fh:
                while True:
                    try:
                        fh.write(b"\0" * small)
                    except OSError:
                        break

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@contextlib.contextmanager
def full_disk(path: Path, size: str = "256k"):
    path.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode:o}", "tmpfs", str(path)], check=True)
    disk = Disk(path)
    try:
        disk.fill()
        yield disk
    finally:
        disk.free()
        _unmount_keeping_writes(path)


def _unmount_keeping_writes(path: Path) -> None:
    """Detach the tmpfs, then copy down what was written to it. Copying first and unmounting
    after lost whatever a writer appended in between (an fsynced batch of records gone with
    the mount): here writers reach the real directory from the moment of the detach, and the
    tmpfs is read through a directory fd opened before it, once appends already under way on it
    have had time to finish."""
    held = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        subprocess.run(["umount", "-l", str(path)], check=True)
        time.sleep(1.0)
        for name in os.listdir(held):
            if not stat.S_ISREG(os.stat(name, dir_fd=held).st_mode):
                continue
            with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=held), "rb") as src, open(path / name, "ab") as out:
                out.write(src.read())
    finally:
        os.close(held)
