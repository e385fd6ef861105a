"""Step: at most one serving endpoint of a target is the environment's default.

Reads `resources.serving_endpoints` of the final document (targets merged, variables
interpolated; the typed value of `default` once `validate_schema` parsed it); changes
nothing. The default endpoint is the one served at `/predict` of the env's serving process
(the others at `/<key>/predict`), and the env has one serving process per target, so two
`default: true` endpoints would claim the same route: each one after the first is an error
at its `default:` line that names the first.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic

KIND = "serving_endpoints"


def _defaults(state: LoadState) -> list[str]:
    """Keys of the endpoints that say `default: true`, in the document's order."""
    endpoints = state.resources.get(KIND)
    if not isinstance(endpoints, dict):
        return []
    typed = getattr(state.parsed.resources, KIND, None) if state.parsed is not None else None
    keys = []
    for key, spec in endpoints.items():
        if typed is not None and key in typed:
            is_default = bool(typed[key].default)
        else:  # the schema step reported what is wrong with the value; count only a plain true
            is_default = isinstance(spec, dict) and spec.get("default") is True
        if is_default:
            keys.append(key)
    return keys


def apply(state: LoadState) -> list[Diagnostic]:
    keys = _defaults(state)
    if len(keys) < 2:
        return []
    first = keys[0]
    first_loc = state.doc.loc(("resources", KIND, first, "default"))
    where = f" ({first_loc})" if first_loc else ""
    return [Diagnostic("error", f"serving endpoint '{key}' is `default: true`, and so is '{first}'{where}: an environment "
                                f"has one default endpoint (served at /predict); remove `default` from all but one "
                                f"(the others are served at /<key>/predict)",
                       state.doc.loc(("resources", KIND, key, "default")))
            for key in keys[1:]]
