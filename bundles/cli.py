"""`conveyor bundle …`: validate, plan, deploy, run, runs, destroy, summary, schema."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from bundles.errors import BundleError, BundleInvalid
from bundles.loader import BUNDLE_FILE, ResolvedBundle, load_bundle
from core.contract import EnvironmentOutputs

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Validate, plan, deploy and run the asset bundle (bundle.yml + resources/).")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
if not out.is_terminal:  # CI logs: do not squeeze tables into 80 columns
    out = Console(soft_wrap=True, width=160)

TargetOpt = typer.Option(None, "-t", "--target", help="bundle target (default: the one marked default)")
VarOpt = typer.Option(None, "--var", help="set a variable: --var name=value (repeatable)")
OutputOpt = typer.Option("text", "-o", "--output", help="text or json")
AsOpt = typer.Option(None, "--as", help="persona whose credentials to use (default: the target's run_as)")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handled(fn: Callable) -> Callable:
    """User errors become one line and exit 1; a bug says so (CONVEYOR_DEBUG=1 for the traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from conveyor.stack import StackError
        from core.storage import StorageError
        from infra.kubernetes.kubeapi import KubeError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except BundleInvalid as exc:
            for d in exc.diagnostics:
                err.print(d.render(), highlight=False, soft_wrap=True)
            _fail(str(exc))
        except (BundleError, StackError, StorageError, KubeError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - last line of defence: no tracebacks for users
            if os.environ.get("CONVEYOR_DEBUG"):
                traceback.print_exc()
            _fail(f"internal error: {exc.__class__.__name__}: {exc} (set CONVEYOR_DEBUG=1 for details)")

    return wrapper


def bundle_root() -> Path:
    """The nearest directory upwards holding bundle.yml (or $CONVEYOR_PROJECT_DIR)."""
    env = os.environ.get("CONVEYOR_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise BundleError(f"no {BUNDLE_FILE} in {here} or any parent directory")


def _parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    out_: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair or not pair.split("=", 1)[0]:
            raise BundleError(f"{flag} expects name=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out_[k.strip()] = v
    return out_


def _load(target: str | None, var: list[str] | None, strict: bool = False) -> ResolvedBundle:
    bundle, diags = load_bundle(bundle_root(), target, _parse_pairs(var, "--var"))
    errors = [d for d in diags if d.severity == "error" or strict]
    if bundle is None or errors:
        raise BundleInvalid(diags)
    for d in diags:
        err.print(d.render(), highlight=False, soft_wrap=True)
    return bundle


def outputs_for(bundle: ResolvedBundle) -> EnvironmentOutputs:
    """The target's environment: `$CONVEYOR_OUTPUTS_DIR/<stack>.json` if set (CI runners
    handed the outputs as a file), else the Pulumi stack's outputs."""
    folder = os.environ.get("CONVEYOR_OUTPUTS_DIR")
    if folder:
        path = Path(folder) / f"{bundle.stack}.json"
        if not path.is_file():
            raise BundleError(f"no outputs for environment {bundle.stack!r} at {path}")
        return EnvironmentOutputs.model_validate_json(path.read_text())
    from conveyor.stack import read_outputs

    return read_outputs(bundle.stack)


def _engine(bundle: ResolvedBundle, persona: str | None, on_action=None):
    from bundles.engine import Engine

    return Engine(bundle, outputs_for(bundle), persona=persona, on_action=on_action)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
@handled
def validate(
    target: Optional[str] = TargetOpt,
    var: Optional[List[str]] = VarOpt,
    strict: bool = typer.Option(False, "--strict", help="treat warnings as errors"),
    output: str = OutputOpt,
) -> None:
    """Check bundle.yml and resources/*.yml; every problem is printed as file:line: message."""
    bundle, diags = load_bundle(bundle_root(), target, _parse_pairs(var, "--var"))
    failing = [d for d in diags if d.severity == "error" or strict]
    if output == "json":
        _print_json({"valid": not failing and bundle is not None, "diagnostics": [d.to_json() for d in diags]})
        raise typer.Exit(1 if failing or bundle is None else 0)
    for d in diags:
        err.print(d.render(), highlight=False, soft_wrap=True)
    if failing or bundle is None:
        n_err = sum(1 for d in diags if d.severity == "error")
        n_warn = len(diags) - n_err
        _fail(f"bundle is invalid: {n_err} error(s), {n_warn} warning(s)" + (" (--strict)" if strict and not n_err else ""))
    res = bundle.resources
    count = sum(len(getattr(res, k)) for k in type(res).model_fields)
    out.print(f"bundle {bundle.name!r}, target {bundle.target!r} ({bundle.mode}, stack {bundle.stack}): "
              f"valid, {count} resources", highlight=False)


@app.command()
@handled
def schema(output: Optional[Path] = typer.Option(None, "--output-file", "-f", help="write to this file")) -> None:
    """JSON Schema of bundle.yml / resources/*.yml, for editor completion."""
    from bundles.models import schema as make_schema

    text = json.dumps(make_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def _plan_table(plan) -> Table:
    table = Table(title=f"plan for target {plan.target} (env {plan.env})")
    for col in ("action", "resource", "name", "detail"):
        table.add_column(col)
    colors = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}
    for a in plan.actions:
        table.add_row(f"[{colors[a.action]}]{a.action}[/]", a.key, a.name or "", a.reason)
    return table


@app.command()
@handled
def plan(target: Optional[str] = TargetOpt, var: Optional[List[str]] = VarOpt, output: str = OutputOpt,
         persona: Optional[str] = AsOpt) -> None:
    """Show what deploy would create, update or delete in the target's environment."""
    bundle = _load(target, var)
    result = _engine(bundle, persona).plan()
    if output == "json":
        _print_json(result.to_json())
        return
    out.print(_plan_table(result))
    c = result.counts()
    out.print(f"{c['create']} to create, {c['update']} to update, {c['delete']} to delete, {c['unchanged']} unchanged")


@app.command()
@handled
def deploy(
    target: Optional[str] = TargetOpt,
    var: Optional[List[str]] = VarOpt,
    force: bool = typer.Option(False, "--force", help="deploy a production target from another git branch"),
    force_lock: bool = typer.Option(False, "--force-lock", help="take the deploy lock even if someone holds it"),
    persona: Optional[str] = AsOpt,
) -> None:
    """Deploy code, MLflow resources, permissions and jobs into the target's environment."""
    bundle = _load(target, var)
    engine = _engine(bundle, persona, on_action=lambda a: out.print(
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


@app.command()
@handled
def destroy(
    target: Optional[str] = TargetOpt,
    var: Optional[List[str]] = VarOpt,
    auto_approve: bool = typer.Option(False, "--auto-approve", help="do not ask for confirmation"),
    force_lock: bool = typer.Option(False, "--force-lock"),
    persona: Optional[str] = AsOpt,
) -> None:
    """Remove everything deploy created for the target (and nothing else)."""
    bundle = _load(target, var)
    engine = _engine(bundle, persona, on_action=lambda a: out.print(f"  delete  {a.key}", highlight=False))
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


@app.command()
@handled
def summary(target: Optional[str] = TargetOpt, var: Optional[List[str]] = VarOpt, output: str = OutputOpt,
            persona: Optional[str] = AsOpt) -> None:
    """Deployed resources of the target, their URLs and the last deployment."""
    bundle = _load(target, var)
    data = _engine(bundle, persona).summary()
    if output == "json":
        _print_json(data)
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


def _runner(bundle: ResolvedBundle, console=None):
    from bundles.envstore import DeploymentStore
    from bundles.runner import JobRunner, Reporter

    outputs = outputs_for(bundle)
    store = DeploymentStore(outputs, bundle.deployment_id())
    return JobRunner(outputs, store, bundle.root, reporter=Reporter(console or out, title=""))


def _run_on_cluster(bundle: ResolvedBundle, outputs: EnvironmentOutputs, job: str, params: dict[str, str],
                    wait: bool, timeout: int | None) -> None:
    from bundles.cluster import cluster_jobs_for
    from bundles.envstore import DeploymentStore
    from bundles.runner import check_params, find_job, new_run_id

    jobs = DeploymentStore(outputs, bundle.deployment_id()).objects("jobs")
    key = find_job(jobs, job, bundle.deployment_id())
    spec = jobs[key]["spec"]
    check_params(key, spec.get("parameters") or {}, params)
    cluster = cluster_jobs_for(outputs, bundle.stack, bundle.deployment_id(), bundle.target, bundle.git.commit,
                               bundle.root)
    active = cluster.active_runs(key)
    limit = spec.get("max_concurrent_runs") or 1
    if len(active) >= limit:
        raise BundleError(f"job {key!r} already has {len(active)} active run(s) ({active[0]}); "
                          f"max_concurrent_runs is {limit}")
    manifest = cluster.start(key, spec, new_run_id(), params)
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    out.print(f"started Job {ns}/{name} (logs: kubectl -n {ns} logs -f job/{name})", highlight=False)
    if not wait:
        return
    with out.status(f"Job {name}: pending") as status:
        result = cluster.wait(name, timeout, on_status=lambda s: status.update(f"Job {name}: {s}"))
    if result == "succeeded":
        out.print(f"run {name} of {key}: [green]success[/green]", highlight=False)
        return
    _fail(f"Job {ns}/{name} {result}; see kubectl -n {ns} logs job/{name}")


@app.command()
@handled
def run(
    job: str = typer.Argument(..., help="job resource key"),
    target: Optional[str] = TargetOpt,
    var: Optional[List[str]] = VarOpt,
    only: Optional[str] = typer.Option(None, "--only", help="comma-separated tasks to run (others are excluded)"),
    params: Optional[List[str]] = typer.Option(None, "--params", help="job parameter override k=v (repeatable, or k=v,k2=v2)"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="kubernetes envs: wait for the Job to finish"),
    timeout: Optional[int] = typer.Option(None, "--timeout", help="kubernetes envs: give up waiting after N seconds"),
) -> None:
    """Run a deployed job's tasks in the target's environment; exit 1 if a task fails.

    On a kubernetes env the run is a Job in the env's namespace (pods as the job's persona)."""
    from bundles.runner import log_tail

    bundle = _load(target, var)
    pairs: list[str] = []
    for p in params or []:
        if p.count("=") > 1:  # k=v,k2=v2
            pairs.extend(x for x in p.split(",") if x)
        else:
            pairs.append(p)
    outputs = outputs_for(bundle)
    if outputs.platform == "kubernetes":
        if only:
            raise BundleError("--only is not supported on a kubernetes env yet: a cluster run runs the whole job")
        _run_on_cluster(bundle, outputs, job, _parse_pairs(pairs, "--params"), wait, timeout)
        return
    runner = _runner(bundle)
    signal.signal(signal.SIGTERM, _interrupt)  # CI cancel: stop the tasks, keep the record
    record = runner.run(job, only=[t.strip() for t in only.split(",") if t.strip()] if only else None,
                        params=_parse_pairs(pairs, "--params"))
    logs = runner.store.runs_dir / record.run_id / "logs"
    if record.status == "success":
        out.print(f"run {record.run_id} of {record.job}: [green]success[/green] (logs: {logs})", highlight=False)
        return
    for name, ts in record.tasks.items():
        if ts.status == "failed":
            err.print(f"[red]task {name} failed[/red] ({ts.reason}); last lines of {ts.log}:", highlight=False)
            err.print(log_tail(ts.log), highlight=False, markup=False)
    _fail(f"run {record.run_id} of job {record.job} {record.status}")


@app.command()
@handled
def runs(run_id: Optional[str] = typer.Argument(None, help="show this run's tasks (and --log a task's log)"),
         target: Optional[str] = TargetOpt, var: Optional[List[str]] = VarOpt,
         job: Optional[str] = typer.Option(None, "--job", help="only this job"),
         log: Optional[str] = typer.Option(None, "--log", help="print the log of this task of RUN_ID"),
         limit: int = typer.Option(20, "-n", "--limit"), output: str = OutputOpt) -> None:
    """Run history of the target (newest first), or one run's tasks and logs."""
    from bundles.envstore import DeploymentStore
    from bundles.runner import list_runs

    bundle = _load(target, var)
    store = DeploymentStore(outputs_for(bundle), bundle.deployment_id())
    colors = {"success": "green", "failed": "red", "running": "yellow", "interrupted": "red",
              "skipped": "dim", "excluded": "dim"}
    if run_id:
        match = [r for r in list_runs(store, limit=10_000) if r["run_id"].startswith(run_id)]
        if len(match) != 1:
            raise BundleError(f"{'no' if not match else 'more than one'} run {run_id!r} in target {bundle.target!r}")
        rec = match[0]
        if log:
            if log not in rec["tasks"]:
                raise BundleError(f"run {rec['run_id']} has no task {log!r} (tasks: {', '.join(rec['tasks'])})")
            path = Path(rec["tasks"][log]["log"] or store.runs_dir / rec["run_id"] / "logs" / f"{log}.log")
            if not path.is_file():
                raise BundleError(f"task {log!r} of run {rec['run_id']} has no log (it did not run)")
            sys.stdout.write(path.read_text(errors="replace"))
            return
        if output == "json":
            _print_json(rec)
            return
        out.print(f"run {rec['run_id']} of job {rec['job']}: [{colors.get(rec['status'], '')}]{rec['status']}[/] "
                  f"({rec['trigger']}, started {rec['started']}, git {rec['git_sha'][:12]})")
        table = Table()
        for col in ("task", "status", "attempts", "seconds", "note", "log"):
            table.add_column(col)
        for name, t in rec["tasks"].items():
            table.add_row(name, f"[{colors.get(t['status'], '')}]{t['status']}[/]", str(t["attempts"] or ""),
                          f"{t['duration_s']:.1f}" if t["duration_s"] is not None else "", t["reason"], t["log"] or "")
        out.print(table)
        return
    history = list_runs(store, job=job, limit=limit)
    if output == "json":
        _print_json(history)
        return
    if not history:
        out.print(f"no runs yet for target {bundle.target!r}")
        return
    table = Table(title=f"runs of target {bundle.target}")
    for col in ("run", "job", "status", "trigger", "started", "tasks"):
        table.add_column(col)
    for r in history:
        counts: dict[str, int] = {}
        for t in r["tasks"].values():
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        table.add_row(r["run_id"], r["job"], f"[{colors.get(r['status'], '')}]{r['status']}[/]", r["trigger"],
                      r["started"], ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    out.print(table)
