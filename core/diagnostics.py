"""Diagnostics: what a validator found, with `file:line` where the input was YAML.

Validators collect every problem as a `Diagnostic` instead of stopping at the first, so a
user sees them all at once (the bundle loader, use-case declarations).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Loc:
    """Where a value was written: file relative to the bundle root, 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" | "warning"
    message: str
    loc: Loc | None = None

    def render(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        tag = "" if self.severity == "error" else "warning: "
        return f"{where}{tag}{self.message}"

    def to_json(self) -> dict:
        return {
            "severity": self.severity,
            "message": self.message,
            "file": self.loc.file if self.loc else None,
            "line": self.loc.line if self.loc else None,
        }
