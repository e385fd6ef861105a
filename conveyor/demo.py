"""`make demo`: the whole story on the embedded default, with progress, ending in a table.

Provision dev, staging and prod; deploy the bundle to each (the first production deploy trains
on prod data, validates, promotes and serves the champion: no job run by hand); train in dev;
an integration run on a data subset in staging; send sample requests; run monitoring. Then the loop
(`closed_loop`): drifted traffic and its labels arrive, retraining_job retrains on them and
rolls the new model out through the canary on live traffic; old vs new on drifted data. Every step
is a command a user could type: the demo prints each one before running it.
Running it again reuses what exists. `--clean` tears everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
from rich.console import Console
from rich.table import Table

from core import settings
from core.cli import guarded
from core.errors import ConveyorError
from core.paths import project_dir, state_dir

# Tables stay readable when the demo is piped to a log (rich falls back to 80 columns there).
console = Console(width=None if sys.stdout.isatty() else 140)
ENVS = ("dev", "staging", "prod")


class StepFailed(ConveyorError, RuntimeError):
    """A demo step failed; its output was shown, the message names the step."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault(settings.USER.name, "demo")
    return env


def step(title: str, cmd: list[str], timeout: int = 1800, quiet: bool = False) -> str:
    """Run one user-visible command under a live status line; show its log on failure."""
    shown = " ".join([Path(cmd[0]).name, *cmd[1:]])
    started = time.monotonic()
    with console.status(f"[bold]{title}[/]  [dim]$ {shown}[/]"):
        proc = subprocess.run(cmd, cwd=project_dir(), env=_env(), capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - started
    if proc.returncode != 0:
        console.print(f"[red]✗[/] {title} [dim]({took:.0f}s)[/]\n[dim]$ {shown}[/]")
        console.print((proc.stdout + proc.stderr)[-4000:], markup=False, highlight=False)
        raise StepFailed(title)
    if not quiet:
        console.print(f"[green]✓[/] {title} [dim]({took:.0f}s)  $ {shown}[/]")
    return proc.stdout


def conveyor(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("conveyor")), *args]


def outputs(env: str) -> dict:
    return json.loads(step(f"read {env} outputs", conveyor("env", "outputs", env, "--show-secrets", "-o", "json"),
                           quiet=True))


def sample_requests(out: dict, frauds: int = 4, legit: int = 4) -> list[tuple[dict, bool]]:
    """Score a few fresh synthetic transactions (some known frauds) through the env's endpoint,
    as a client would; returns each prediction with the transaction's true label."""
    from usecases.fraud.generate import generate_transactions

    data = generate_transactions(2000, seed=7, days=7)
    fraud = data.is_fraud.astype(bool)
    rows = pd.concat([data[fraud].head(frauds), data[~fraud].head(legit)])
    labels = dict(zip(rows.transaction_id, rows.is_fraud.astype(bool)))
    payload = {"rows": json.loads(rows.drop(columns=["is_fraud"]).to_json(orient="records", date_format="iso"))}
    token = out["credentials"]["ci"]["token"]
    resp = httpx.post(f"{out['serving_url']}/predict", json=payload, headers={"Authorization": f"Bearer {token}"},
                      timeout=60)
    if resp.status_code != 200:
        raise StepFailed(f"POST {out['serving_url']}/predict answered {resp.status_code}: {resp.text[:500]}")
    return [(p, labels.get(p["transaction_id"], False)) for p in resp.json()]


def champion_summary(out: dict, model_name: str) -> tuple[str, str]:
    """The champion's version and headline metrics from the env's registry."""
    from mlflow import MlflowClient

    cred = out["credentials"]["ci"]
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = cred["username"], cred["password"]
    client = MlflowClient(tracking_uri=out["tracking_uri"], registry_uri=out["tracking_uri"])
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, "champion")
    except MlflowException:  # no champion yet
        return "-", "-"
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    shown = ", ".join(f"{k} {metrics[f'test_{k}']:.3f}" for k in ("roc_auc", "pr_auc", "f1") if f"test_{k}" in metrics)
    return version.version, shown or "-"


DEMO_MODEL = "fraud_detector"  # the registered model the demo trains and promotes


def registered_model_name(target: str) -> str:
    """The demo model's final name in `target` (dev-mode prefixed), from the bundle summary."""
    out = step(f"summary of {target}", conveyor("bundle", "summary", "-t", target, "-o", "json"), quiet=True)
    models = json.loads(out).get("resources", {}).get("registered_models", {})
    return models.get(DEMO_MODEL, {}).get("name", DEMO_MODEL)


def run_demo() -> None:
    console.rule("[bold]Conveyor demo[/]: dev → staging → prod on this machine")
    for env in ENVS:
        step(f"provision {env}", conveyor("env", "up", env))
    for target in ENVS:
        # a deploy ships the serving code; in prod (CI's release path), while an endpoint serves
        # nothing, it also runs its bootstrap job: prod serves a validated model from the start
        step(f"deploy the bundle to {target}" + (" (first deploy: trains and serves its first models)"
                                                 if target == "prod" else ""),
             conveyor("bundle", "deploy", "-t", target, "--force"))
    step("train in dev", conveyor("bundle", "run", "model_training_job", "-t", "dev"))
    step("staging integration run on a data subset",
         conveyor("bundle", "run", "model_training_job", "-t", "staging", "--params", "data_subset=0.5"))
    prod = outputs("prod")
    with console.status(f"POST {prod['serving_url']}/predict"):
        predictions = sample_requests(prod)
    table = Table("transaction", "fraud probability", "predicted fraud", "actually fraud", "model version",
                  "served by", title=f"sample requests to prod: POST {prod['serving_url']}/predict")
    for p, truth in predictions:
        table.add_row(p["transaction_id"], f"{p['fraud_probability']:.3f}", "yes" if p["is_fraud"] else "no",
                      "yes" if truth else "no", p["model_version"], p["served_by"])
    console.print(table)
    step("monitor prod (drift report)", conveyor("bundle", "run", "monitoring_job", "-t", "prod"))
    closed_loop(prod)
    summary()


def _task_log(target: str, run_id: str, task: str) -> str:
    return step(f"log of {task}", conveyor("bundle", "runs", run_id, "-t", target, "--log", task), quiet=True)


def closed_loop(prod: dict) -> None:
    """Drifted traffic and its labels arrive; retraining_job retrains on them, the canary promotes on
    live traffic; the old and new champions are compared on drifted data (conveyor/demo_loop.py)."""
    from conveyor import demo_loop as loop

    console.rule("[bold]The loop[/]: the world drifts, labels come back, prod retrains itself")
    model = registered_model_name("prod")
    old, _ = champion_summary(prod, model)
    if loop.already_retrained(prod, model, old):
        console.print(f"[yellow]prod's champion v{old} was already retrained on drifted traffic by an earlier demo; "
                      "`make demo-clean` to see the loop again[/]")
        return
    tag = loop.run_tag()
    with console.status(f"{loop.DRIFTED_ROWS} drifted transactions → POST {prod['serving_url']}/predict"):
        raw = loop.send_drifted_traffic(prod, tag)
    console.print(f"[green]✓[/] {len(raw)} drifted transactions answered by v{old} "
                  f"(fraud rate {raw.is_fraud.mean():.1%}, the reference had ~2%)")
    part = loop.land_labels(prod, raw, tag)
    console.print(f"[green]✓[/] their labels landed in the labels feed: {part}")
    with loop.live_traffic(prod, tag) as live:  # the canary advances on these requests
        step("retraining_job in prod: monitor → drift? → fresh window → train → canary on live traffic",
             conveyor("bundle", "run", "retraining_job", "-t", "prod"), timeout=1200)
    [run] = json.loads(step("runs", conveyor("bundle", "runs", "-t", "prod", "-o", "json", "-n", "1", "--job",
                                             "retraining_job"), quiet=True))
    verdict = next((line for line in _task_log("prod", run["run_id"], "drift_sustained").splitlines()
                    if line.startswith("retrain:")), "retrain: ?")
    console.print(f"  monitoring: {verdict[:220]}")
    child = (run["tasks"].get("retrain") or {}).get("child_run")
    if child:
        for line in _task_log("prod", child, "update_endpoint").splitlines():
            if line.startswith(("canary", "update_endpoint: rollout complete")):
                console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"  live traffic during the rollout: {live.sent} requests answered, {len(live.failed)} batches failed")
    new, _ = champion_summary(prod, model)
    if new == old:
        raise StepFailed(f"retraining did not promote a new champion (still v{old})")
    before, after = loop.compare_on_drifted(prod, model, old, new)
    console.print(f"[bold]on fresh drifted data[/]: champion v{old} pr_auc {before:.4f} → v{new} pr_auc {after:.4f} "
                  f"({after - before:+.4f})")
    if after <= before:
        raise StepFailed(f"the retrained v{new} is not better than v{old} on drifted data")


def summary() -> None:
    table = Table("env", "MLflow", "endpoint", "model", "champion", "held-out metrics", title="Conveyor environments")
    for env in ENVS:
        out = outputs(env)
        model = registered_model_name(env)
        version, metrics = champion_summary(out, model)
        table.add_row(env, out["tracking_uri"], out["serving_url"], model, version, metrics)
    console.print(table)
    console.print("credentials (MLflow login, serving token) per persona: "
                  "[bold].venv/bin/conveyor env outputs <env> --show-secrets[/]")
    from core.contract import local_path

    report = local_path(outputs("prod")["storage"]["metric_table"]) / "reports" / "latest.html"
    if report.is_file():
        console.print(f"monitoring report: {report.as_uri()}")


def clean() -> None:
    for env in ENVS:
        try:
            step(f"tear down {env}", conveyor("env", "down", env))
        except StepFailed:
            console.print(f"[yellow]{env} was not fully torn down; removing its state anyway[/]")
    shutil.rmtree(state_dir(), ignore_errors=True)
    console.print(f"[green]✓[/] removed {state_dir()}")


@guarded
def main(argv: list[str] | None = None) -> int:
    """Run (or `--clean`) the demo; a failed step ends it with the step's name and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m conveyor.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="tear every environment down and delete .conveyor/")
    args = parser.parse_args(argv)
    try:
        clean() if args.clean else run_demo()
    except StepFailed as exc:
        console.print(f"[red]demo stopped at: {exc}[/]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
