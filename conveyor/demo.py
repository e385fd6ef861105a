"""`make demo`: the whole story on the embedded default, with progress, ending in a table.

Provision dev, staging and prod; deploy the bundle to each; train in dev; an
integration run on a data subset in staging; train on prod data in prod (validate,
promote the champion, serve it); send sample requests; run monitoring. Every step
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
from rich.console import Console
from rich.table import Table

from conveyor.paths import project_dir, state_dir

console = Console()
ENVS = ("dev", "staging", "prod")


class StepFailed(RuntimeError):
    pass


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("CONVEYOR_USER", "demo")
    return env


def step(title: str, cmd: list[str], timeout: int = 1800) -> str:
    """Run one user-visible command under a live status line; show its log on failure."""
    shown = " ".join(cmd)
    started = time.monotonic()
    with console.status(f"[bold]{title}[/]  [dim]$ {shown}[/]"):
        proc = subprocess.run(cmd, cwd=project_dir(), env=_env(), capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - started
    if proc.returncode != 0:
        console.print(f"[red]✗[/] {title} [dim]({took:.0f}s)[/]\n[dim]$ {shown}[/]")
        console.print((proc.stdout + proc.stderr)[-4000:], markup=False, highlight=False)
        raise StepFailed(title)
    console.print(f"[green]✓[/] {title} [dim]({took:.0f}s)  $ {shown}[/]")
    return proc.stdout


def conveyor(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("conveyor")), *args]


def outputs(env: str) -> dict:
    return json.loads(step(f"read {env} outputs", conveyor("env", "outputs", env, "--show-secrets", "-o", "json")))


def sample_requests(out: dict, n: int = 5) -> list[dict]:
    """Score a few synthetic transactions through the env's endpoint, as a client would."""
    from ml.data.generate import generate_transactions

    rows = generate_transactions(n_rows=n, seed=7).drop(columns=["is_fraud"], errors="ignore")
    payload = {"rows": json.loads(rows.to_json(orient="records", date_format="iso"))}
    token = out["credentials"]["ci"]["token"]
    resp = httpx.post(f"{out['serving_url']}/predict", json=payload, headers={"Authorization": f"Bearer {token}"},
                      timeout=60)
    resp.raise_for_status()
    return resp.json()


def champion_summary(out: dict, model_name: str) -> tuple[str, str]:
    """The champion's version and headline metrics from the env's registry."""
    from mlflow import MlflowClient

    cred = out["credentials"]["ci"]
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = cred["username"], cred["password"]
    client = MlflowClient(tracking_uri=out["tracking_uri"], registry_uri=out["tracking_uri"])
    try:
        version = client.get_model_version_by_alias(model_name, "champion")
    except Exception:  # noqa: BLE001 - no champion yet is a normal state for an env
        return "-", "-"
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in ("roc_auc", "pr_auc", "f1") if k in metrics)
    return version.version, shown or "-"


def registered_model_name(target: str) -> str:
    out = step(f"summary of {target}", conveyor("bundle", "summary", "-t", target, "-o", "json"))
    data = json.loads(out)
    for model in data.get("resources", {}).get("registered_models", {}).values():
        return model.get("name", "fraud_detector")
    return "fraud_detector"


def run_demo() -> None:
    console.rule("[bold]Conveyor demo[/]: dev → staging → prod on this machine")
    for env in ENVS:
        step(f"provision {env}", conveyor("env", "up", env))
    for target in ENVS:
        step(f"deploy the bundle to {target}", conveyor("bundle", "deploy", "-t", target, "--force"))
    step("train in dev", conveyor("bundle", "run", "model_training_job", "-t", "dev"))
    step("staging integration run on a data subset",
         conveyor("bundle", "run", "model_training_job", "-t", "staging", "--params", "data_subset=0.2"))
    step("train, validate and promote in prod", conveyor("bundle", "run", "model_training_job", "-t", "prod"))
    prod = outputs("prod")
    predictions = sample_requests(prod)
    table = Table("transaction", "fraud probability", "is fraud", "model version", "served by", title="prod /predict")
    for p in predictions:
        table.add_row(str(p.get("transaction_id")), f"{p.get('fraud_probability', 0):.3f}", str(p.get("is_fraud")),
                      str(p.get("model_version")), str(p.get("served_by")))
    console.print(table)
    step("monitor prod (drift report)", conveyor("bundle", "run", "monitoring_job", "-t", "prod"))
    summary()


def summary() -> None:
    table = Table("env", "MLflow", "credentials", "endpoint", "champion", "metrics", title="Conveyor environments")
    for env in ENVS:
        out = outputs(env)
        version, metrics = champion_summary(out, registered_model_name(env))
        table.add_row(env, out["tracking_uri"], f"conveyor env outputs {env} --show-secrets", out["serving_url"],
                      version, metrics)
    console.print(table)
    reports = sorted((state_dir() / "envs" / "prod" / "storage").glob("**/*.html"))
    if reports:
        console.print(f"monitoring report: {reports[-1]}")


def clean() -> None:
    for env in ENVS:
        try:
            step(f"tear down {env}", conveyor("env", "down", env))
        except StepFailed:
            console.print(f"[yellow]{env} was not fully torn down; removing its state anyway[/]")
    shutil.rmtree(state_dir(), ignore_errors=True)
    console.print(f"[green]✓[/] removed {state_dir()}")


def main(argv: list[str] | None = None) -> int:
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
