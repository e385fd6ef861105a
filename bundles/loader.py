"""Load `bundle.yml` + its includes for one target: merge, interpolate, validate.

`load_bundle` applies `STEPS` in order; each is a module of `bundles/mutators/` (its
README says how to add one). Everything that can be wrong is collected as a `Diagnostic`
with `file:line`, so `validate` reports all problems at once instead of the first one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundles.gitinfo import GitInfo
from bundles.models import Resources, Target
from bundles.mutators import (
    LoadState,
    check_default_endpoint,
    check_endpoint_rollouts,
    check_semantics,
    check_use_cases,
    define_builtins,
    include,
    interpolate,
    load_root,
    pause_schedules,
    prefix_names,
    resolve_references,
    resolve_variables,
    run,
    select_target,
    target_overrides,
    validate_schema,
    warn_unused_variables,
)
from bundles.mutators.define_builtins import current_user
from bundles.mutators.load_root import BUNDLE_FILE
from bundles.mutators.prefix_names import NAMED_KINDS
from core.diagnostics import Diagnostic, Loc

__all__ = ["BUNDLE_FILE", "NAMED_KINDS", "STEPS", "ResolvedBundle", "current_user", "load_bundle"]

STEPS = (
    load_root,              # root/bundle.yml -> doc; stops when unreadable or not a mapping
    include,                # doc.include globs -> their resources merged into doc.resources
    select_target,          # -t or the `default: true` target -> target, target_cfg; stops if none
    target_overrides,       # target_cfg.resources -> deep-merged over doc.resources
    define_builtins,        # target_cfg.mode, bundle.name, user, git -> mode, user, git, builtins
    resolve_variables,      # declarations, --var, BUNDLE_VAR_*, target values -> vars
    interpolate,            # vars, builtins -> ${var.*} ${bundle.*} replaced in resources, targets
    prefix_names,           # mode, name_prefix, user -> each resource's final name, names
    resolve_references,     # names, resource fields -> ${resources.*} replaced in resources
    pause_schedules,        # mode -> development job schedules PAUSED
    validate_schema,        # doc -> parsed (typed models), or a diagnostic per bad value
    check_semantics,        # doc, target, root -> task graph and cross-reference diagnostics
    check_default_endpoint,  # serving_endpoints' `default` -> an error per default after the first
    check_endpoint_rollouts,  # serving_endpoints' `rollout` (strategy, stages, sla limits) -> an error per bad value
    check_use_cases,        # jobs' use_case parameters, root/usecases -> each use case's diagnostics
    warn_unused_variables,  # vars.declared - vars.used -> warnings
)


@dataclass
class ResolvedBundle:
    """One target's view of the bundle: final names, variables applied, validated."""

    root: Path
    name: str
    target: str
    target_cfg: Target
    stack: str
    mode: str
    user: str
    git: GitInfo
    variables: dict[str, Any]
    resources: Resources
    packages: list[str] | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def run_as(self) -> str:
        return self.target_cfg.run_as or "ci"

    def deployment_id(self) -> str:
        """Where this target's state lives in the env; development deployments are per user."""
        base = f"{self.name}.{self.target}"
        return f"{base}.{self.user}" if self.mode == "development" else base


def load_bundle(
    root: Path,
    target: str | None = None,
    cli_vars: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
    user: str | None = None,
) -> tuple[ResolvedBundle | None, list[Diagnostic]]:
    """Resolve `root/bundle.yml` for `target`; returns (bundle or None, diagnostics).

    `environ` (default: the process environment) supplies `BUNDLE_VAR_*`; `user` (default:
    `current_user()`) names a development deployment. Diagnostics come sorted by location;
    the bundle is None when any of them is an error.
    """
    state = LoadState(
        root=Path(root).resolve(),
        requested_target=target,
        cli_vars=cli_vars or {},
        environ=dict(os.environ if environ is None else environ),
        user=user,
    )
    run(state, STEPS)
    if state.doc is None:  # bundle.yml itself could not be read: its diagnostics as they came
        return None, state.diagnostics
    diags = _sorted(state.diagnostics)
    if state.stopped or state.parsed is None or any(d.severity == "error" for d in diags):
        return None, diags
    return _resolved(state, diags), diags


def _resolved(state: LoadState, diags: list[Diagnostic]) -> ResolvedBundle:
    parsed = state.parsed
    tmodel = parsed.targets[state.target]
    return ResolvedBundle(
        root=state.root,
        name=parsed.bundle.name if parsed.bundle else state.name,
        target=state.target,
        target_cfg=tmodel,
        stack=tmodel.stack or state.target,
        mode=tmodel.mode,
        user=state.user,
        git=state.git,
        variables=state.vars.values,
        resources=parsed.resources,
        packages=parsed.bundle.artifact.packages if parsed.bundle else None,
        diagnostics=diags,
    )


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Duplicates dropped (first kept), then ordered by file:line; location-less ones last."""
    seen, out = set(), []
    for d in diags:
        if (d.severity, d.message, d.loc) not in seen:
            seen.add((d.severity, d.message, d.loc))
            out.append(d)
    return sorted(out, key=lambda d: (d.loc is None, d.loc or Loc("", 0)))
