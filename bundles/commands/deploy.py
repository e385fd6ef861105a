"""`plan`, `deploy`, `destroy`, `summary`: the bundle's resources in the target's environment
(the operations are `bundles.engine.Engine`'s)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from bundles.commands.common import (
    AsOpt,
    OutputOpt,
    TargetOpt,
    VarOpt,
    err,
    handled,
    load,
    out,
    outputs_for,
    print_json,
)
from bundles.errors import BundleError
from bundles.loader import ResolvedBundle

if TYPE_CHECKING:
    from bundles.engine import Engine
    from bundles.planner import Plan


def engine_for(bundle: ResolvedBundle, persona: str | None, on_action=None) -> Engine:
    from bundles.engine import Engine

    return Engine(bundle, outputs_for(bundle), persona=persona, on_action=on_action)


def _plan_table(plan: Plan) -> Table:
    table = Table(title=f"plan for target {plan.target} (env {plan.env})")
    for col in ("action", "resource", "name", "detail"):
        table.add_column(col)
    colors = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}
    for a in plan.actions:
        table.add_row(f"[{colors[a.action]}]{a.action}[/]", a.key, a.name or "", a.reason)
    return table


@handled
def plan(target: str | None = TargetOpt, var: list[str] | None = VarOpt, output: str = OutputOpt,
         persona: str | None = AsOpt) -> None:
    """Show what deploy would create, update or delete in the target's environment."""
    bundle = load(target, var)
    result = engine_for(bundle, persona).plan()
    if output == "json":
        print_json(result.to_json())
        return
    out.print(_plan_table(result))
    c = result.counts()
    out.print(f"{c['create']} to create, {c['update']} to update, {c['delete']} to delete, {c['unchanged']} unchanged")


@handled
def deploy(
    target: str | None = TargetOpt,
    var: list[str] | None = VarOpt,
    force: bool = typer.Option(False, "--force", help="deploy a production target from another git branch"),
    force_lock: bool = typer.Option(False, "--force-lock", help="take the deploy lock even if someone holds it"),
    persona: str | None = AsOpt,
) -> None:
    """Deploy code, MLflow resources, permissions and jobs into the target's environment."""
    bundle = load(target, var)
    engine = engine_for(bundle, persona, on_action=lambda a: out.print(
        f"  {a.action:<7} {a.key}" + (f" ({a.name})" if a.name else ""), highlight=False))
    out.print(f"deploying bundle {bundle.name!r} to target {bundle.target!r} (env {engine.outputs.env}) as {engine.persona}",
              highlight=False)
    result = engine.deploy(force=force, force_lock=force_lock)
    if result.took_over_lock:
        err.print(f"warning: took over the deploy lock held by {result.took_over_lock}")
    if not result.plan.has_changes:
        out.print(f"no changes: target {bundle.target!r} is up to date (deployment #{result.state.sequence})")
        return
    last = result.state.last
    out.print(f"deployment #{last.sequence} done: {last.changes} change(s), code {(last.artifact or '')[:12]}, "
              f"git {last.git_sha[:12]}", highlight=False)


@handled
def destroy(
    target: str | None = TargetOpt,
    var: list[str] | None = VarOpt,
    auto_approve: bool = typer.Option(False, "--auto-approve", help="do not ask for confirmation"),
    force_lock: bool = typer.Option(False, "--force-lock"),
    persona: str | None = AsOpt,
) -> None:
    """Remove everything deploy created for the target (and nothing else)."""
    bundle = load(target, var)
    engine = engine_for(bundle, persona, on_action=lambda a: out.print(f"  delete  {a.key}", highlight=False))
    state = engine.state()
    if not state.resources:
        out.print(f"nothing deployed for target {bundle.target!r}")
        return
    if not auto_approve:
        if not sys.stdin.isatty():
            raise BundleError("destroy needs --auto-approve when not run interactively")
        typer.confirm(f"destroy {len(state.resources)} resources of target {bundle.target!r} in env {engine.outputs.env}?",
                      abort=True)
    done = engine.destroy(force_lock=force_lock)
    out.print(f"destroyed {len(done)} resources of target {bundle.target!r}")


@handled
def summary(target: str | None = TargetOpt, var: list[str] | None = VarOpt, output: str = OutputOpt,
            persona: str | None = AsOpt) -> None:
    """Deployed resources of the target, their URLs and the last deployment."""
    bundle = load(target, var)
    data = engine_for(bundle, persona).summary()
    if output == "json":
        print_json(data)
        return
    out.print(f"bundle {data['bundle']!r} target {data['target']!r} → env {data['env']} ({data['mode']})", highlight=False)
    out.print(f"  MLflow:   {data['tracking_uri']}\n  serving:  {data['serving_url']}", highlight=False)
    last = data["last_deployment"]
    if not last:
        out.print("  not deployed yet")
    else:
        out.print(f"  last deployment #{last['sequence']} at {last['time']} by {last['deployer']} "
                  f"(persona {last['persona']}), git {last['git_sha'][:12]}", highlight=False)
    table = Table()
    for col in ("resource", "name", "url / schedule"):
        table.add_column(col)
    for kind, entries in data["resources"].items():
        for key, r in entries.items():
            table.add_row(f"{kind}.{key}", r["name"] or "", r.get("url") or r.get("schedule") or "")
    out.print(table)
