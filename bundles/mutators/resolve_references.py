"""Step: replace `${resources.<kind>.<key>.<field>}` now that every resource has its final name.

Reads `state.names` and the resources' scalar fields; rewrites `doc.data["resources"]`
(a `resources` that is not a mapping becomes an empty one).
"""

from __future__ import annotations

from bundles.mutators._references import References
from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    state.doc.data["resources"] = References(state, diags).walk(state.resources, ("resources",), final=True)
    return diags
