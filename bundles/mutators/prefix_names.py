"""Step: give every named resource its final name; development mode prefixes it.

Reads `state.target_cfg["name_prefix"]` (default `dev_<user>_` in development mode, none in
production) and each resource's `name` (default: its key); sets `name` in the document and
records it in `state.names` for `${resources.<kind>.<key>.name}`. Prefixing keeps two
people's development deployments in one environment from colliding.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from bundles.resources import NAMED_KINDS  # the resource kinds whose entries carry a `name`
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    prefix = state.target_cfg.get("name_prefix")
    if prefix is None:
        prefix = f"dev_{state.user}_" if state.mode == "development" else ""
    resources = state.resources
    for kind in NAMED_KINDS:
        entries = resources.get(kind)
        if not isinstance(entries, dict):
            continue
        for key, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            base = entry.get("name", key)
            if isinstance(base, str) and "${resources." in base:
                diags.append(Diagnostic(
                    "error", f"{kind}.{key}.name may not reference other resources",
                    state.doc.loc(("resources", kind, key, "name")),
                ))
                continue
            final = f"{prefix}{base}"
            entry["name"] = final
            state.names[(kind, key)] = final
    return diags
