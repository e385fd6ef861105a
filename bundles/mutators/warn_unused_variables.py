"""Step: warn about each declared variable no `${var.*}` used.

Reads `state.vars` (marked by the interpolation steps, so it runs after them); changes nothing.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    unused = sorted(state.vars.declared - state.vars.used)
    return [Diagnostic("warning", f"variable {name!r} is never used", state.doc.loc(("variables", name)))
            for name in unused]
