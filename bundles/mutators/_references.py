"""`${...}` resolution shared by the two interpolation steps.

`var.*` and `bundle.*` resolve in the first pass (`interpolate`); `${resources.<kind>.<key>.<field>}`
resolves only in the final pass (`resolve_references`), once every resource has its final name.
A reference that cannot be resolved is left as written and reported at its file:line.
"""

from __future__ import annotations

import re
from typing import Any

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic
from core.errors import did_you_mean

REF_RE = re.compile(r"\$\{([^}]*)\}")
MAX_DEPTH = 10  # variables built from variables: deeper than this is taken as a cycle


class References:
    """Resolves references against `state`; appends what it cannot resolve to `diags`."""

    def __init__(self, state: LoadState, diags: list[Diagnostic]):
        self.state, self.diags = state, diags
        self._depth = 0

    def walk(self, node: Any, path: tuple, final: bool) -> Any:
        """A copy of `node` (found at `path`) with every resolvable reference replaced."""
        if isinstance(node, dict):
            return {k: self.walk(v, path + (k,), final) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, path + (i,), final) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return self.string(node, path, final)
        return node

    def string(self, value: str, path: tuple, final: bool) -> Any:
        """A string that is one whole reference takes the referenced value's type; else text substitution."""
        whole = REF_RE.fullmatch(value)
        if whole:
            found, got = self.lookup(whole.group(1), path, final)
            return got if found else value

        def sub(match: re.Match) -> str:
            found, got = self.lookup(match.group(1), path, final)
            return str(got) if found else match.group(0)

        return REF_RE.sub(sub, value)

    def lookup(self, ref: str, path: tuple, final: bool) -> tuple[bool, Any]:
        """(found, value); reports the problem itself when not found."""
        loc = self.state.doc.loc(path)
        ref = ref.strip()
        if ref.startswith("var."):
            return self._variable(ref, path, final)
        if ref in self.state.builtins:
            return True, self.state.builtins[ref]
        if ref.startswith("resources."):
            return self._resource(ref, path) if final else (False, None)
        if ref.startswith("bundle."):
            known = [k for k in self.state.builtins if k.startswith("bundle.")]
            self.diags.append(Diagnostic("error", f"unknown reference ${{{ref}}}{did_you_mean(ref, known)}", loc))
            return False, None
        self.diags.append(Diagnostic(
            "error", f"unknown reference ${{{ref}}} (use var.*, bundle.* or resources.*)", loc
        ))
        return False, None

    def _variable(self, ref: str, path: tuple, final: bool) -> tuple[bool, Any]:
        loc = self.state.doc.loc(path)
        variables = self.state.vars
        name = ref[4:]
        variables.used.add(name)
        if name in variables.values:
            value = variables.values[name]
            if isinstance(value, str) and "${" in value:  # a variable built from others
                if self._depth > MAX_DEPTH:
                    self.diags.append(Diagnostic("error", f"variable {name!r} refers to itself", loc))
                    return False, None
                self._depth += 1
                try:
                    value = self.string(value, path, final)
                finally:
                    self._depth -= 1
            return True, value
        if name in variables.missing:
            self.diags.append(Diagnostic(
                "error",
                f"variable {name!r} has no value: pass --var {name}=..., set BUNDLE_VAR_{name}, "
                f"set it in the target, or give it a default",
                loc,
            ))
        else:
            self.diags.append(Diagnostic(
                "error", f"undefined variable ${{{ref}}}{did_you_mean(name, variables.declared)}", loc
            ))
        return False, None

    def _resource(self, ref: str, path: tuple) -> tuple[bool, Any]:
        loc = self.state.doc.loc(path)
        parts = ref.split(".")
        if len(parts) != 4:
            self.diags.append(Diagnostic("error", f"bad reference ${{{ref}}}: use ${{resources.<kind>.<key>.<field>}}", loc))
            return False, None
        _, kind, key, attr = parts
        resources = self.state.doc.data.get("resources") or {}
        entries = resources.get(kind) if isinstance(resources, dict) else None
        if not isinstance(entries, dict) or key not in entries:
            known = [f"{k}.{n}" for k, v in resources.items() if isinstance(v, dict) for n in v]
            self.diags.append(Diagnostic(
                "error", f"unknown resource in ${{{ref}}}{did_you_mean(f'{kind}.{key}', known)}", loc
            ))
            return False, None
        if attr == "name" and (kind, key) in self.state.names:
            return True, self.state.names[(kind, key)]
        entry = entries[key]
        if isinstance(entry, dict) and attr in entry and not isinstance(entry[attr], (dict, list)):
            return True, entry[attr]
        self.diags.append(Diagnostic("error", f"${{{ref}}}: resource has no scalar field {attr!r}", loc))
        return False, None
