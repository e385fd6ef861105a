"""Step: replace `${var.*}` and `${bundle.*}` in `resources` and `targets`.

Reads `state.vars` and `state.builtins`; rewrites `doc.data["resources"]` and
`doc.data["targets"]` and marks the variables it used. `${resources.*}` is left for
`resolve_references`, which runs once names are final.
"""

from __future__ import annotations

from bundles.mutators._references import References
from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    refs = References(state, diags)
    for section in ("resources", "targets"):
        if section in state.doc.data:
            state.doc.data[section] = refs.walk(state.doc.data[section], (section,), final=False)
    return diags
