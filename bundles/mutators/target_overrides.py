"""Step: deep-merge the selected target's `resources:` over the bundle's `resources`.

Reads `state.target_cfg["resources"]`; replaces `doc.data["resources"]` with the merge and
points the overridden values' locations at the target section, so errors in an override
name the line of the override.
"""

from __future__ import annotations

from bundles.mutators._tree import deep_merge, graft
from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    doc = state.doc
    overrides = state.target_cfg.get("resources") or {}
    if isinstance(overrides, dict) and overrides:
        doc.data["resources"] = deep_merge(doc.data.get("resources") or {}, overrides)
        graft(doc, doc, ("targets", state.target, "resources"), ("resources",))
    return []
