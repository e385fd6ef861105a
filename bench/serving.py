"""Serving benchmark: single-row requests to the Conveyor endpoint and to `mlflow models serve`
of the same model, driven by a compiled load tool, next to the in-process floor.

    python -m bench.serving [--seconds 8] [--quick] [--no-direct] [--model DIR] [--tool hey|wrk]

Rows of the one table:
- the floor: one row through the model's features + score in this process, on the endpoint's
  few-row path (array features, compiled pipeline); below it the same with pandas + sklearn;
- each server at 1, 4, 16 and 64 connections (closed loop, `--seconds` per level), then
  1 connection again right after the 64 burst (light traffic after heavy traffic): Conveyor
  as users reach it (through the env's launcher: its proxy on the public port in front of
  `bentoml serve` of the deployed code), Conveyor direct (`bentoml serve` alone: the proxy
  hop is the difference), and `mlflow models serve`;
- the targets, each under the figure it bounds, with PASS/FAIL, on the user-facing path
  (via the launcher);
- next to each Conveyor level, the endpoint's own scoring time per batch (p50 / p99 of the
  inference table's `latency_ms`): a client p99 far above it is waiting (queueing, HTTP, pauses),
  not work.
Conveyor gets the real request: bearer token, the `/predict` schema with raw transaction
fields (it computes the on-demand features), the inference table on. `mlflow models serve`
gets the precomputed feature row, as its callers must send it. Without --model a small model
of the job's pipeline is fitted first. The tool sends the same row every time; the endpoint
generates a fresh transaction id per request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import loadtools, project, servers
from bench.loadtools import Level, LoadTool, Request
from bench.targets import Target, ratio

LEVELS = (1, 4, 16, 64)
AFTER_BURST = "1 after 64"
console = Console(width=None if sys.stdout.isatty() else 150)


def measure(tool: LoadTool, req: Request, seconds: float, work: Path,
            table: Path | None = None) -> tuple[dict[str, Level], dict[str, tuple[float, float]]]:
    """Warm-up, then every level in order; the 64 level is last so the after-burst level follows it.
    With the endpoint's inference `table`, also each level's server-side scoring time (p50, p99 ms)."""
    tool.run(req, 4, min(seconds, 2.0), work)
    levels, scoring = {}, {}
    for key, conns in [*((str(c), c) for c in LEVELS), (AFTER_BURST, 1)]:
        started = time.time()
        levels[key] = tool.run(req, conns, seconds, work)
        if table is not None:
            scoring[key] = scoring_ms(table, started)
    return levels, scoring


def scoring_ms(table: Path, since: float) -> tuple[float, float]:
    """(p50, p99) of `latency_ms` the endpoint logged for rows scored since `since`: the time a
    request's batch took in `Engine.score` (features, model, records) — the work, without the
    HTTP stack and the wait for a batch; the client's latency minus it is that wait and HTTP."""
    from ml.serving.inference_log import read_table

    time.sleep(0.5)  # the writer takes its queue every 200 ms
    frame = read_table(table, since=since)
    if not len(frame):
        return float("nan"), float("nan")
    p50, p99 = np.percentile(frame["latency_ms"].astype(float).to_numpy(), [50, 99])
    return float(p50), float(p99)


def floor(model_dir: Path, raw, seconds: float, fast: bool = True) -> Level:
    """One raw row → features → score, sequentially, one native thread (as a worker). `fast`: the
    endpoint's few-row path (the use case's array features, the compiled pipeline, each checked
    equal first); else pandas `build_features` + the sklearn pipeline's `predict_proba`."""
    import mlflow.sklearn
    from threadpoolctl import threadpool_limits

    from ml.serving import compiled, fastpath

    model = mlflow.sklearn.load_model(str(model_dir))
    uc = project.use_case()
    if fast:
        features = fastpath.Features(uc)
        scorer = compiled.compile_scorer(model, uc.feature_names, True)
        if not features.array_ok or scorer is None:
            raise RuntimeError(f"the fast path is not available: {features.problem or 'the pipeline does not compile'}")
        rows = [dict(r) for r in raw[uc.request_columns].to_dict(orient="records")]
        for r in rows:
            r.update({c: v.to_pydatetime() for c, v in r.items() if hasattr(v, "to_pydatetime")})
        calls = [lambda r=r: scorer(features.build([r], None).arrays) for r in rows]
    else:
        frames = [raw.iloc[[i]] for i in range(len(raw))]
        calls = [lambda f=f: model.predict_proba(project.model_input(f)) for f in frames]
    latencies = []
    with threadpool_limits(limits=1):
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            calls[len(latencies) % len(calls)]()
            latencies.append((time.perf_counter() - t0) * 1000)
    p50, p99 = np.percentile(latencies, [50, 99])
    return Level(1, float(p50), float(p99), len(latencies) / seconds, len(latencies), 0)


def conveyor_request(server: servers.Server, raw, work: Path) -> Request:
    from ml.serving.client import request_rows

    row = {k: v for k, v in request_rows(raw.head(1))[0].items() if k != "transaction_id"}
    body = work / "conveyor-body.json"
    body.write_text(json.dumps({"rows": [row]}))
    return _checked(Request(server.url + "/predict", body, {"Authorization": f"Bearer {servers.TOKEN}"}))


def mlflow_request(server: servers.Server, raw, work: Path) -> Request:
    split = project.model_input(raw.head(1)).to_dict(orient="split")
    split.pop("index", None)
    body = work / "mlflow-body.json"
    body.write_text(json.dumps({"dataframe_split": split}, default=float))
    return _checked(Request(server.url + "/invocations", body, {}))


def _checked(req: Request) -> Request:
    """One request by hand first: a wrong body must fail here, not as a column of errors."""
    resp = httpx.post(req.url, content=req.body.read_bytes(), timeout=30,
                      headers={"Content-Type": "application/json", **req.headers})
    if resp.status_code >= 300:
        raise RuntimeError(f"POST {req.url} answered {resp.status_code}: {resp.text[:500]}")
    return req


def targets(fl: Level, cv: dict[str, Level], mf: dict[str, Level]) -> list[tuple[str, Target]]:
    """(column it sits under, target) for each performance bound; `cv` is the user-facing path."""
    mlflow_best = max((lv.rps for lv in mf.values() if lv.errors == 0), default=float("nan"))
    out = []
    for key, when in (("1", "1 conn"), (AFTER_BURST, "1 conn after 64")):
        c, m = cv[key], mf[key]
        out += [("p50 ms", Target(f"{when}: p50 ÷ mlflow p50", ratio(c.p50_ms, m.p50_ms), 0.75)),
                ("p50 ms", Target(f"{when}: p50 − floor p50", c.p50_ms - fl.p50_ms, 3.0, unit=" ms")),
                ("p99 ms", Target(f"{when}: p99 ÷ p50", ratio(c.p99_ms, c.p50_ms), 2.0))]
    c64 = cv["64"]
    out += [("req/s", Target("64 conns: req/s ÷ mlflow best req/s", ratio(c64.rps, mlflow_best), 10.0, at_most=False)),
            ("errors", Target("64 conns: errors", float(c64.errors), 0.0, unit="")),
            ("p99 ms", Target("64 conns: p99", c64.p99_ms, 100.0, unit=" ms"))]
    return out


COLUMNS = ("", "conns", "p50 ms", "p99 ms", "req/s", "errors", "scoring p50 / p99 ms", "target", "verdict")


VIA_LAUNCHER = "Conveyor POST /predict via launcher"
DIRECT = "Conveyor direct (bentoml serve)"
MLFLOW = "mlflow models serve /invocations"


def table(fl: Level, servers_: dict[str, dict[str, Level]], title: str, slow: Level | None = None,
          scoring: dict[str, dict[str, tuple[float, float]]] | None = None) -> Table:
    """The floor, each server's levels (in `servers_` order), then the targets on the launcher path.
    `scoring`: per server and level, the endpoint's own scoring time (`scoring_ms`)."""
    t = Table(title=title)
    for col in COLUMNS:
        t.add_column(col, justify="left" if col in ("", "target") else "right")

    def row(name: str, conns: str, lv: Level, rps_label: str = "", work: tuple[float, float] | None = None) -> None:
        t.add_row(name, conns, f"{lv.p50_ms:.1f}", f"{lv.p99_ms:.1f}", f"{lv.rps:,.0f}{rps_label}", str(lv.errors),
                  f"{work[0]:.1f} / {work[1]:.1f}" if work else "", "", "")

    row("in-process floor (features + score, 1 row, fast path)", "—", fl, " calls/s")
    if slow is not None:
        row("in-process, pandas features + sklearn predict_proba", "—", slow, " calls/s")
    for name, levels in servers_.items():
        t.add_section()
        for key, lv in levels.items():
            row(name if key == "1" else "", key, lv, work=(scoring or {}).get(name, {}).get(key))
    t.add_section()
    for column, tg in targets(fl, servers_[VIA_LAUNCHER], servers_[MLFLOW]):
        cells = dict.fromkeys(COLUMNS, "")
        cells.update({"": tg.what, column: tg.measured(), "target": tg.bound(), "verdict": tg.verdict()})
        t.add_row(*cells.values())
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per load level (default 8)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s per level")
    ap.add_argument("--model", help="MLflow model directory (default: fit a small one of the job's pipeline)")
    ap.add_argument("--no-direct", action="store_true", help="skip `bentoml serve` without the launcher in front")
    loadtools.add_argument(ap)
    args = ap.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    tool = loadtools.chosen(args.tool, "bench.serving")
    if tool is None:
        return 2
    raw = project.transactions(300, seed=9)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        model_dir = Path(args.model) if args.model else None
        if model_dir is None:
            with console.status("fitting a small model"):
                model_dir = project.save_small_model(work / "model")
        with console.status("in-process floor"):
            fl = floor(model_dir, raw, seconds)
            slow = floor(model_dir, raw, min(seconds, 4.0), fast=False)
        load_before = os.getloadavg()[0]
        measured: dict[str, dict[str, Level]] = {}
        scoring: dict[str, dict[str, tuple[float, float]]] = {}
        with console.status(f"Conveyor via the launcher under {tool.name}"), servers.launcher(model_dir, work) as srv:
            measured[VIA_LAUNCHER], scoring[VIA_LAUNCHER] = measure(tool, conveyor_request(srv, raw, work), seconds, work,
                                                                    srv.table)
        if not args.no_direct:
            with console.status(f"Conveyor direct under {tool.name}"), servers.endpoint(model_dir, work) as srv:
                measured[DIRECT], scoring[DIRECT] = measure(tool, conveyor_request(srv, raw, work), seconds, work,
                                                            srv.table)
        with console.status(f"mlflow models serve under {tool.name}"), servers.mlflow_serve(model_dir, work) as srv:
            measured[MLFLOW], _ = measure(tool, mlflow_request(srv, raw, work), seconds, work)
    title = (f"single-row scoring: {tool.name}, {seconds:g} s per level, {os.cpu_count()} CPUs, "
             f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    console.print(table(fl, measured, title, slow, scoring))
    save({"tool": tool.name, "seconds": seconds, "load_average": [load_before, os.getloadavg()[0]],
          "floor": fl.__dict__, "pandas_sklearn": slow.__dict__,
          **{name: {k: {**v.__dict__, **(dict(zip(("scoring_p50_ms", "scoring_p99_ms"), scoring[name][k]))
                                          if k in scoring.get(name, {}) else {})}
                    for k, v in levels.items()} for name, levels in measured.items()}})
    return 0


def save(result: dict) -> None:
    """The figures of the last run (bench/results/, gitignored) for docs and before/after notes."""
    out = servers.ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
