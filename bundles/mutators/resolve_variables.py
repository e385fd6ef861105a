"""Step: give each declared variable its value: --var > BUNDLE_VAR_<name> > target > default.

Reads `doc.data["variables"]`, the target's `variables`, `state.cli_vars` and
`state.environ`; sets `state.vars`. Values may still hold `${...}`: the interpolation
steps resolve them where they are used. Setting an undeclared variable is an error.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState, Variables
from core.diagnostics import Diagnostic
from core.errors import did_you_mean


def apply(state: LoadState) -> list[Diagnostic]:
    doc, target = state.doc, state.target
    diags: list[Diagnostic] = []
    decls = doc.data.get("variables") or {}
    if not isinstance(decls, dict):
        decls = {}
    tvars = state.target_cfg.get("variables") or {}
    if not isinstance(tvars, dict):
        tvars = {}
    for name in state.cli_vars:
        if name not in decls:
            diags.append(Diagnostic("error", f"--var {name}: no such variable{did_you_mean(name, decls)}"))
    for name in tvars:
        if name not in decls:
            diags.append(Diagnostic(
                "error", f"target {target!r} sets undeclared variable {name!r}{did_you_mean(name, decls)}",
                doc.loc(("targets", target, "variables", name)),
            ))
    found = Variables(declared=set(decls))
    for name, decl in decls.items():
        default = decl.get("default") if isinstance(decl, dict) else None
        if name in state.cli_vars:
            found.values[name] = state.cli_vars[name]
        elif f"BUNDLE_VAR_{name}" in state.environ:
            found.values[name] = state.environ[f"BUNDLE_VAR_{name}"]
        elif name in tvars:
            found.values[name] = tvars[name]
        elif default is not None:
            found.values[name] = default
        else:
            found.missing.add(name)
    state.vars = found
    return diags
