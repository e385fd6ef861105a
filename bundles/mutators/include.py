"""Step: merge the `resources` of every file matched by `include:` into the document.

Reads `doc.data["include"]` (glob patterns relative to the root); adds each included
resource under `doc.data["resources"]` with its own file:line. An included file may hold
only `resources`, and a resource key may be defined once across all files.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from bundles.mutators._tree import graft
from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic, Loc
from core.errors import did_you_mean
from core.source import Located, load_yaml


def apply(state: LoadState) -> list[Diagnostic]:
    doc = state.doc
    diags: list[Diagnostic] = []
    patterns = doc.data.get("include", [])
    if not isinstance(patterns, list):
        return diags  # the schema step reports the wrong type
    resources = doc.data.setdefault("resources", {})
    if not isinstance(resources, dict):
        return diags
    origin: dict[tuple, Loc] = {}  # (kind, key) -> where it was first defined
    for kind, entries in resources.items():
        if isinstance(entries, dict):
            for key in entries:
                origin[(kind, key)] = doc.loc(("resources", kind, key))
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            continue
        matches = sorted(glob.glob(str(state.root / pattern), recursive=True))
        if not matches:
            diags.append(Diagnostic("warning", f"include {pattern!r} matches no file", doc.loc(("include", i))))
        for match in matches:
            sub, errs = load_yaml(Path(match), os.path.relpath(match, state.root))
            diags.extend(errs)
            if sub is not None:
                diags.extend(_merge_file(doc, sub, resources, origin))
    return diags


def _merge_file(doc: Located, sub: Located, resources: dict, origin: dict[tuple, Loc]) -> list[Diagnostic]:
    """Merge one included file into `resources`; `origin` records (and detects) each key's definition."""
    diags: list[Diagnostic] = []
    if not isinstance(sub.data, dict):
        return [Diagnostic("error", "an included file must be a mapping with `resources`", sub.loc(()))]
    for top in sub.data:
        if top != "resources":
            diags.append(Diagnostic(
                "error",
                f"unknown key {top!r} in an included file (only `resources` is allowed){did_you_mean(top, ['resources'])}",
                sub.loc((top,)),
            ))
    sub_res = sub.data.get("resources") or {}
    if not isinstance(sub_res, dict):
        return diags + [Diagnostic("error", "`resources` must be a mapping", sub.loc(("resources",)))]
    accepted: set[tuple] = set()
    for kind, entries in sub_res.items():
        if not isinstance(entries, dict):
            resources[kind] = entries  # the schema step reports it at this file's line
            graft(doc, sub, ("resources", kind), ("resources", kind))
            continue
        if kind not in resources:
            doc.locs[("resources", kind)] = sub.loc(("resources", kind))
        bucket = resources.setdefault(kind, {})
        if not isinstance(bucket, dict):
            continue
        for key, value in entries.items():
            if (kind, key) in origin:
                diags.append(Diagnostic(
                    "error",
                    f"duplicate resource {kind}.{key} (first defined at {origin[(kind, key)]})",
                    sub.loc(("resources", kind, key)),
                ))
                continue
            bucket[key] = value
            origin[(kind, key)] = sub.loc(("resources", kind, key))
            accepted.add((kind, key))
    for path, loc in sub.locs.items():  # one pass per file, not one per resource
        if len(path) >= 3 and path[0] == "resources" and (path[1], path[2]) in accepted:
            doc.locs[path] = loc
    return diags
