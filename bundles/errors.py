"""Diagnostics, and the bundle's user-facing errors (a `ConveyorError`: one clear line)."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConveyorError
from core.errors import did_you_mean as did_you_mean  # re-exported beside Diagnostic for its callers


class BundleError(ConveyorError):
    """A user-facing failure of a bundle command: the message is printed as is, without a traceback."""


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


class BundleInvalid(BundleError):
    """Validation failed; carries every diagnostic so the CLI can list them all (`details()`)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"bundle is invalid: {len(errors)} error(s)")

    def details(self) -> list[str]:
        return [d.render() for d in self.diagnostics]
