"""`run` and `runs`: start a deployed job on the env's job backend; read the run history."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer
from rich.table import Table

from bundles.commands.common import (
    OutputOpt,
    TargetOpt,
    VarOpt,
    err,
    handled,
    load,
    out,
    outputs_for,
    parse_pairs,
    print_json,
)
from bundles.errors import BundleError


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _split_params(params: list[str] | None) -> list[str]:
    """`--params k=v` repeated, or `--params k=v,k2=v2`."""
    pairs: list[str] = []
    for p in params or []:
        if p.count("=") > 1:
            pairs.extend(x for x in p.split(",") if x)
        else:
            pairs.append(p)
    return pairs


@handled
def run(
    job: str = typer.Argument(..., help="job resource key"),
    target: str | None = TargetOpt,
    var: list[str] | None = VarOpt,
    only: str | None = typer.Option(None, "--only", help="comma-separated tasks to run (others are excluded)"),
    params: list[str] | None = typer.Option(None, "--params", help="job parameter override k=v (repeatable, or k=v,k2=v2)"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="kubernetes envs: wait for the Job to finish"),
    timeout: int | None = typer.Option(None, "--timeout", help="kubernetes envs: give up waiting after N seconds"),
) -> None:
    """Run a deployed job's tasks in the target's environment; exit 1 if a task fails.

    On a kubernetes env the run is a Job in the env's namespace (pods as the job's persona)."""
    from bundles.backends import JobTarget, backend_for
    from bundles.runner import Reporter

    bundle = load(target, var)
    backend = backend_for(JobTarget.of(bundle, outputs_for(bundle)))
    signal.signal(signal.SIGTERM, _interrupt)  # CI cancel: stop the tasks, keep the record
    started = backend.start(job, params=parse_pairs(_split_params(params), "--params"),
                            only=[t.strip() for t in only.split(",") if t.strip()] if only else None,
                            reporter=Reporter(out, title=""))
    if started.started:
        out.print(started.started, highlight=False)
    if started.finished:
        result = started.wait()
    elif not wait:
        return
    else:
        with out.status(f"{started.label}: pending") as status:
            result = started.wait(timeout, on_status=lambda s: status.update(f"{started.label}: {s}"))
    if result.ok:
        logs = f" (logs: {result.logs})" if result.logs else ""
        out.print(f"run {result.run_id} of {result.job}: [green]success[/green]{logs}", highlight=False)
        return
    for failed in result.failures:
        err.print(f"[red]task {failed.task} failed[/red] ({failed.reason}); last lines of {failed.log}:", highlight=False)
        err.print(failed.tail, highlight=False, markup=False)
    raise BundleError(result.error)


@handled
def runs(run_id: str | None = typer.Argument(None, help="show this run's tasks (and --log a task's log)"),
         target: str | None = TargetOpt, var: list[str] | None = VarOpt,
         job: str | None = typer.Option(None, "--job", help="only this job"),
         log: str | None = typer.Option(None, "--log", help="print the log of this task of RUN_ID"),
         limit: int = typer.Option(20, "-n", "--limit"), output: str = OutputOpt) -> None:
    """Run history of the target (newest first), or one run's tasks and logs."""
    from bundles.envstore import DeploymentStore
    from bundles.runner import list_runs

    bundle = load(target, var)
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
            print_json(rec)
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
        print_json(history)
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
