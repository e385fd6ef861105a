"""File-mode helpers for tests of owner-only state.

Import `permissive_umask` into a test module to run each of its tests under umask 022,
what a user's shell usually has: the code under test must not rely on a strict umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


def mode(path: Path) -> int:
    """The permission bits of `path` (e.g. 0o600)."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)
