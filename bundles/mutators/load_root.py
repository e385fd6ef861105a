"""Step: read `bundle.yml` from the bundle root into `state.doc`.

Reads `state.root`; sets `state.doc`. Stops the pipeline when the file is missing, is not
YAML or is not a mapping, since no later step has anything to work on.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic
from core.source import load_yaml

BUNDLE_FILE = "bundle.yml"


def apply(state: LoadState) -> list[Diagnostic]:
    main, diags = load_yaml(state.root / BUNDLE_FILE, BUNDLE_FILE)
    if main is None:
        state.stopped = True
        return diags
    if not isinstance(main.data, dict):
        state.stopped = True
        return diags + [Diagnostic("error", "bundle.yml must be a mapping", main.loc(()))]
    state.doc = main
    if "bundle" not in main.data:
        diags.append(Diagnostic("error", "bundle.yml needs a `bundle:` section with a `name`", main.loc(())))
    return diags
