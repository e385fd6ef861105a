"""Where a test expects a diagnostic to point: the line of a file that holds some text."""

from __future__ import annotations

from pathlib import Path


def line_of(path: Path, needle: str) -> int:
    """The 1-based number of the first line of `path` containing `needle`."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")
