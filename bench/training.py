"""Benchmark: the training job's wall time and peak memory by data size, and batch scoring speed.

    python -m bench.training                     # 100k, 1M, 5M rows (tens of minutes on 2 cores)
    python -m bench.training --sizes 20k,100k    # quick mode

Each size runs the real job tasks (ingest with DVC → validate_data with GX → train →
validate_model → deploy_model with Bento packaging) as subprocesses against a loopback
MLflow server (sqlite) and a fresh env in a temp dir, exactly as `conveyor bundle run`
does. Peak memory is the largest RSS of any task process (incl. DVC stage processes).
Batch inference compares rows/s of: the `batch_score` task end to end (process start,
model load, parquet I/O), in-process `score_frame` (features + predict), and the floor,
raw `model.predict_proba` on precomputed features — all on the same rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TASKS = [
    ("ingest", "ml.data.ingest"),
    ("validate_data", "ml.validation.validate_data"),
    ("train", "ml.training.train"),
    ("validate_model", "ml.validation.validate_model"),
    ("deploy_model", "ml.deployment.deploy_model"),
]
SCORE_ROWS_MAX = 1_000_000


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def one_size(rows: int, tracking_uri: str, root: Path) -> dict:
    """Run the job once at `rows` (called in a child process so its peak RSS is its own)."""
    from tests.ml.harness import MlEnv, new_run_id

    env = MlEnv("bench", root / f"env-{rows}", tracking_uri)
    run_id = new_run_id()
    out: dict = {"rows": rows, "tasks": {}}
    started = time.perf_counter()
    for task, module in TASKS:
        t0 = time.perf_counter()
        args = ["--rows", str(rows)] if task == "ingest" else []
        proc = env.run_task(run_id, task, module, *args, timeout=7200)
        out["tasks"][task] = round(time.perf_counter() - t0, 2)
        if proc.returncode != 0:
            raise SystemExit(f"{task} failed at {rows} rows:\n{proc.stderr[-3000:]}")
    out["job_s"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    out.update(score_speed(env, min(rows, SCORE_ROWS_MAX), root))
    return out


def score_speed(env, rows: int, root: Path) -> dict:
    import os

    import mlflow.sklearn

    from ml.data.generate import generate_transactions
    from ml.features import FEATURES, build_features
    from ml.inference.batch_score import score_frame
    from tests.ml.harness import new_run_id

    table = root / f"score-{rows}.parquet"
    raw = generate_transactions(rows, seed=1234).drop(columns=["is_fraud"])
    raw.to_parquet(table)
    t0 = time.perf_counter()
    proc = env.run_task(new_run_id(), "batch_score", "ml.inference.batch_score", "--input", str(table),
                        "--output", str(root / "predictions"), job="batch_inference_job", timeout=7200)
    job_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"batch_score failed:\n{proc.stderr[-3000:]}")
    os.environ["MLFLOW_TRACKING_URI"] = env.tracking_uri
    model = mlflow.sklearn.load_model("models:/fraud-detector-bench@champion")
    t0 = time.perf_counter()
    score_frame(model, raw, 0.3, 200_000)
    frame_s = time.perf_counter() - t0
    features = build_features(raw)[FEATURES]
    t0 = time.perf_counter()
    model.predict_proba(features)
    raw_s = time.perf_counter() - t0
    return {"score_rows": rows, "batch_job_rows_s": round(rows / job_s), "score_frame_rows_s": round(rows / frame_s),
            "raw_predict_rows_s": round(rows / raw_s)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.training", description="Training job and batch scoring benchmark.")
    ap.add_argument("--sizes", default="100k,1M,5M", help="comma-separated row counts (k/M suffixes)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tracking-uri", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.tracking_uri, Path(args.root))))
        return 0
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        print(f"bench.training: error: --sizes {args.sizes!r}: use numbers like 100k,1M", file=sys.stderr)
        return 2
    from tests.ml.harness import PROJECT, start_mlflow

    console = Console(width=None if sys.stdout.isatty() else 220)
    results = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        server = start_mlflow(root / "mlflow")
        try:
            for rows in sizes:
                with console.status(f"training job at {rows:,} rows…"):
                    proc = subprocess.run([sys.executable, "-m", "bench.training", "--one", str(rows), "--tracking-uri", server.uri,
                                           "--root", str(root)], cwd=PROJECT, capture_output=True, text=True)
                if proc.returncode != 0:
                    console.print(f"[red]{rows:,} rows failed[/red]: {proc.stderr[-2000:]}")
                    return 1
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                save(results)
                console.print(f"{rows:,} rows: job {results[-1]['job_s']} s, peak {results[-1]['peak_rss_mb']} MB")
        finally:
            server.stop()
    table = Table(title="Training job (ingest → validate_data → train → validate_model → deploy_model) and batch scoring")
    for col in ("rows", "ingest s", "validate_data s", "train s", "validate_model s", "deploy_model s", "job wall s",
                "peak RSS MB", "scored rows", "batch job rows/s", "score_frame rows/s", "raw predict_proba rows/s"):
        table.add_column(col, justify="right")
    for r in results:
        t = r["tasks"]
        table.add_row(f"{r['rows']:,}", *(f"{t[k]:.1f}" for k, _ in TASKS), f"{r['job_s']:.1f}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['score_rows']:,}", f"{r['batch_job_rows_s']:,}", f"{r['score_frame_rows_s']:,}", f"{r['raw_predict_rows_s']:,}")
    console.print(table)
    return 0


def save(results: list[dict]) -> None:
    """Keep what was measured so far (bench/results/, gitignored) in case a later size is cut short."""
    from tests.ml.harness import PROJECT

    out = PROJECT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
