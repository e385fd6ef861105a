"""Step: the cross-reference checks the typed models cannot express (`bundles.checks`).

Reads the final document, the target and the root (task graphs, references between
resources and tasks, task modules on disk); changes nothing.
"""

from __future__ import annotations

from bundles import checks
from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    return checks.semantic(state.doc, state.target, state.root)
