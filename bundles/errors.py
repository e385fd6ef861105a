"""The bundle's user-facing errors (a `ConveyorError`: one clear line)."""

from __future__ import annotations

from core.diagnostics import Diagnostic
from core.errors import ConveyorError


class BundleError(ConveyorError):
    """A user-facing failure of a bundle command: the message is printed as is, without a traceback."""


class BundleInvalid(BundleError):
    """Validation failed; carries every diagnostic so the CLI can list them all (`details()`)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"bundle is invalid: {len(errors)} error(s)")

    def details(self) -> list[str]:
        return [d.render() for d in self.diagnostics]
