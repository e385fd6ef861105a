"""Step: choose the target to load — the one requested, else the one marked `default: true`.

Reads `doc.data["targets"]` and `state.requested_target`; sets `state.target` and
`state.target_cfg` (the target's raw mapping). Stops the pipeline when no target can be
chosen: every later step depends on it.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic
from core.errors import did_you_mean


def apply(state: LoadState) -> list[Diagnostic]:
    doc = state.doc
    targets = doc.data.get("targets")
    requested = state.requested_target
    chosen: str | None = None
    diags: list[Diagnostic] = []
    if not isinstance(targets, dict) or not targets:
        diags.append(Diagnostic("error", "bundle.yml defines no `targets`", doc.loc(("targets",))))
    elif requested:
        if requested in targets:
            chosen = requested
        else:
            diags.append(Diagnostic(
                "error",
                f"unknown target {requested!r} (targets: {', '.join(targets)}){did_you_mean(requested, targets)}",
                doc.loc(("targets",)),
            ))
    else:
        defaults = [n for n, t in targets.items() if isinstance(t, dict) and t.get("default") is True]
        if len(defaults) == 1:
            chosen = defaults[0]
        else:
            diags.append(Diagnostic(
                "error", "no target given: pass -t <target> or mark one target `default: true`", doc.loc(("targets",))
            ))
    if chosen is None:
        state.stopped = True
        return diags
    cfg = targets[chosen] or {}
    state.target = chosen
    state.target_cfg = cfg if isinstance(cfg, dict) else {}
    return diags
