"""Benchmark: the training job's wall time, its split, peak memory and floor by data size; batch scoring speed.

    python -m bench.training                     # 100k, 1M, 5M rows (tens of minutes on 2 cores)
    python -m bench.training --sizes 20k,100k    # smaller sizes
    python -m bench.training --quick             # smoke run: 20k rows

Each size runs the real job tasks (ingest with DVC → validate_data with GX → train →
validate_model → deploy_model with Bento packaging) as subprocesses against a loopback
MLflow server (sqlite) and a fresh env in a temp dir, exactly as `conveyor bundle run`
does — under py-spy when it is installed, which splits each task's wall time into imports,
I/O, DVC, GX, fit, predict, importance, plots and MLflow (see `bench/training_split.py`).
In the same run it measures the floor: the job's estimator on the same rows in one process
(generate → features → time split → fit → predict), and the bare fit alone. Peak memory is
the largest RSS of any task process (incl. DVC stage processes). Batch scoring compares the
`batch_score` task end to end (process start, model load, parquet I/O) with raw
`predict_proba` on precomputed features of the same rows. The performance targets are
printed with PASS/FAIL under the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench import pyspy
from bench.training_split import NAMES, run_task
from bench.training_tables import job_table, split_table, target_table
from bundles import warmstart
from bundles.execution import LAUNCHER

TASKS = [
    ("ingest", "ml.data.ingest"),
    ("validate_data", "ml.validation.validate_data"),
    ("train", "ml.training.train"),
    ("validate_model", "ml.validation.validate_model"),
    ("deploy_model", "ml.deployment.deploy_model"),
]
SCORE_ROWS_MAX = 1_000_000
PROFILES = Path(__file__).resolve().parent / "results" / "profiles"  # py-spy raw stacks per task (speedscope opens them)
QUICK_SIZES = "20k"
THREADS = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 2) // 2)  # tasks and floor alike


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def one_size(rows: int, tracking_uri: str, root: Path, profile: bool) -> dict:
    """Run the job once at `rows` (called in a child process so its peak RSS is its own)."""
    from tests.ml.harness import PROJECT, MlEnv, new_run_id

    # The tasks and the floor get the same native threads: a task's default (half the cores, one
    # left for tracking and serving: ml/task.py), or $OMP_NUM_THREADS when the caller sets it. Set before scikit-learn loads its OpenMP runtime in this process.
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    env = MlEnv("bench", root / f"env-{rows}", tracking_uri, extra_env={"OMP_NUM_THREADS": str(THREADS)})
    PROFILES.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    out: dict = {"rows": rows, "threads": THREADS, "tasks": {}, "cpu": {}, "split": {}, "rss_mb": {}}
    started, warm, task_rss_kb = time.perf_counter(), warmstart.enabled(), 0
    out["warm_start"] = warm
    for task, module in TASKS:
        args = ["--rows", str(rows)] if task == "ingest" else []
        spy = PROFILES / f"{task}-{rows}.txt" if profile else None
        # the command `bundles.execution` runs, started the way it starts it ($CONVEYOR_WARM_START)
        cmd = [sys.executable, "-c", LAUNCHER, str(PROJECT), module, *args]
        timed = run_task(cmd, env.task_env(run_id, task), PROJECT, spy, timeout=7200, warm=warm)
        if timed.proc.returncode != 0:
            raise SystemExit(f"{task} failed at {rows} rows:\n{timed.proc.stderr[-3000:]}")
        out["tasks"][task] = round(timed.wall_s, 2)
        out["cpu"][task] = round(timed.cpu_s, 2)
        out["split"][task] = {k: round(v, 2) for k, v in timed.split_s.items()}
        task_rss_kb = max(task_rss_kb, timed.maxrss_kb)
        out["rss_mb"][task] = round(timed.maxrss_kb / 1024, 1)  # 0: a cold task (its RSS counts in the children's peak)
    out["job_s"] = round(time.perf_counter() - started, 2)
    out["load_avg"] = round(os.getloadavg()[0], 1)  # 1-minute load average when the job ended
    if warm:  # loading the starter is the job's CPU too (its own, not the tasks it forked)
        out["cpu"]["warm starter"] = round(warmstart.starters_cpu_s(), 2)
    out["peak_rss_mb"] = round(max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, task_rss_kb) / 1024, 1)
    out.update(floor(rows))
    model_name = env.task_values(run_id, "train").get("model_name")
    serve(env, model_name, env.task_values(run_id, "deploy_model").get("champion_version"))
    out.update(score_speed(env, model_name, min(rows, SCORE_ROWS_MAX), root))
    return out


def floor(rows: int) -> dict:
    """The job's work without the job: generate + features + split + fit + predict, in this process."""
    from bench import project

    t0 = time.perf_counter()
    raw = project.transactions(rows, seed=42)
    generate_s = time.perf_counter() - t0
    parts = project.floor(raw)
    total = generate_s + parts["features_s"] + parts["split_s"] + parts["fit_s"] + parts["predict_s"]
    return {"floor_s": round(total, 2), "bare_fit_s": round(parts["fit_s"], 2), "fit_rows": parts["train_rows"]}


def serve(env, model_name: str, version: str | None) -> None:
    """Stand in for the rollout the job ends with (`update_endpoint`, which needs a serving
    endpoint): the version `deploy_model` decided becomes `champion`, which batch scoring reads."""
    from mlflow import MlflowClient

    if not version:
        raise SystemExit(f"deploy_model decided no champion for {model_name}: nothing to score with")
    os.environ["MLFLOW_TRACKING_URI"] = env.tracking_uri
    MlflowClient().set_registered_model_alias(model_name, "champion", str(version))


def score_speed(env, model_name: str, rows: int, root: Path) -> dict:
    import mlflow.sklearn

    from bench import project
    from tests.ml.harness import new_run_id

    table = root / f"score-{rows}.parquet"
    raw = project.transactions(rows, seed=1234).drop(columns=[project.use_case().label])
    raw.to_parquet(table)
    t0 = time.perf_counter()
    proc = env.run_task(new_run_id(), "batch_score", "ml.inference.batch_score", "--input", str(table),
                        "--output", str(root / "predictions"), job="batch_inference_job", timeout=7200)
    job_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"batch_score failed:\n{proc.stderr[-3000:]}")
    os.environ["MLFLOW_TRACKING_URI"] = env.tracking_uri
    model = mlflow.sklearn.load_model(f"models:/{model_name}@champion")
    features = project.model_input(raw)
    t0 = time.perf_counter()
    model.predict_proba(features)
    raw_s = time.perf_counter() - t0
    return {"score_rows": rows, "batch_job_rows_s": round(rows / job_s), "raw_predict_rows_s": round(rows / raw_s)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.training", description="Training job and batch scoring benchmark.")
    ap.add_argument("--sizes", default="100k,1M,5M", help="comma-separated row counts (k/M suffixes)")
    ap.add_argument("--quick", action="store_true", help=f"smoke run: --sizes {QUICK_SIZES}")
    ap.add_argument("--no-split", action="store_true", help="run the tasks without py-spy (no time split)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tracking-uri", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.tracking_uri, Path(args.root), not args.no_split)))
        return 0
    try:
        sizes = [parse_size(s) for s in (QUICK_SIZES if args.quick else args.sizes).split(",") if s.strip()]
    except ValueError:
        print(f"bench.training: error: --sizes {args.sizes!r}: use numbers like 100k,1M", file=sys.stderr)
        return 2
    from tests.ml.harness import PROJECT, start_mlflow

    console = Console(width=None if sys.stdout.isatty() else 200)
    split = not args.no_split and pyspy.executable() is not None
    if not args.no_split and not split:
        console.print(f"[yellow]no time split: py-spy is not installed ({pyspy.INSTALL_HINT})")
    results = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        server = start_mlflow(root / "mlflow")
        try:
            for rows in sizes:
                cmd = [sys.executable, "-m", "bench.training", "--one", str(rows), "--tracking-uri", server.uri,
                       "--root", str(root)] + ([] if split else ["--no-split"])
                with console.status(f"training job at {rows:,} rows…"):
                    proc = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True)
                if proc.returncode != 0:
                    console.print(f"[red]{rows:,} rows failed[/red]: {proc.stderr[-2000:]}")
                    return 1
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                save(results)
                console.print(f"{rows:,} rows: job {results[-1]['job_s']} s, peak {results[-1]['peak_rss_mb']} MB")
        finally:
            server.stop()
    console.print(job_table(results, [t for t, _ in TASKS]))
    if split:
        console.print(split_table(results, [t for t, _ in TASKS], NAMES))
    console.print(target_table(results))
    return 0


def save(results: list[dict]) -> None:
    """Keep what was measured so far (bench/results/, gitignored) in case a later size is cut short."""
    from tests.ml.harness import PROJECT

    out = PROJECT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
