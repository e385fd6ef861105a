"""Serving latency with and without feature-table lookups: p50/p99 in process and over HTTP.

    python -m bench.features [--requests 2000] [--entities 2000] [--batch 1] [--http-requests 1000]
                             [--store-url postgresql+psycopg://user@host/db] [--no-http]

Both parts serve a model of the use case fitted here on rows joined point-in-time with a
table computed by `ml.features.compute` over generated rows (stamped to end an hour ago),
from an online store materialised from that table: SQLite under a temporary storage root,
or the PostgreSQL database `--store-url` names (password from PGPASSWORD), as the refresh
job writes it. 90% of requests name a known customer, the rest an unknown one.

- **in process**: one thread, the real `Engine.score` (schema, lookups, features, model,
  inference table); "without" serves the same engine with lookups switched off (the use
  case's looked-up features are then its fallbacks); "lookup alone" times `Lookups.augment`.
- **over HTTP**: two real endpoints (`bentoml serve ml.serving.service:ConveyorEndpoint`, auth
  and inference table on, as `bench.servers.endpoint` starts them), one request of one row at
  a time on a kept-alive connection, alternating between the two call by call (each first half
  the time) so both see
  the same machine load. "without" is the same code and model with a use-case folder whose
  params.yaml looks nothing up (a copy of the project's `usecases/`, imported first), so the
  endpoint makes no lookup at all. The endpoints' `/status` `feature_lookups` counts are
  printed: every request of "with" must have been a hit or a missing entity, never
  `unavailable`.

The targets are relative (what a lookup adds to a request), as bench/serving.py's; a figure
taken on a loaded machine is a finding to re-measure, not a result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import project, servers
from bench.targets import Target

TARGETS_MS = {"in process: with − without lookups, p50": 2.0, "in process: lookup alone, p50": 2.0,
              "HTTP: with − without lookups, p50": 2.0, "HTTP: with − without lookups, p99": 5.0}
HTTP_WARMUP = 50  # requests per endpoint before the timed ones (counted in /status too)
console = Console(width=None if sys.stdout.isatty() else 150)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _setup(args, tmp: Path):
    """(use case, table key, wanted features, spec, table, model dir, store, request rows)."""
    import mlflow.sklearn
    import pandas as pd
    import yaml

    from bundles.resources.feature_tables import FeatureTable
    from core.feature_tables import definition_key, dump_definition
    from core.storage import Blobs
    from ml.features import compute, online
    from ml.features.lookups import declared
    from ml.features.pit import as_of
    from ml.features.stores import open_store
    from ml.serving.client import sample_rows

    uc = project.use_case()
    wanted = declared(uc)
    if not wanted:
        raise SystemExit(f"use case {uc.name!r} looks nothing up (params.yaml feature_tables)")
    tables = yaml.safe_load((servers.ROOT / "resources" / "features.yml").read_text())
    key, want = next(iter(wanted.items()))
    spec = FeatureTable.model_validate(tables["resources"]["feature_tables"][key])
    raw = project.transactions(args.entities * 40, seed=11)
    # the table's newest rows an hour old, as after an hourly refresh: lookups hit, not stale
    raw[spec.timestamp] += pd.Timestamp.now() - pd.Timedelta(hours=1) - raw[spec.timestamp].max()
    table = compute.compute_table(key, spec, raw)
    joined = as_of(raw, table, spec, want.features, uc.timestamp)
    model = uc.estimator(project.params().train).fit(uc.build_features(joined), raw[uc.label].to_numpy())
    model_dir = tmp / "model"
    mlflow.sklearn.save_model(model, str(model_dir),
                              skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"])
    store = open_store(tmp / "storage", args.store_url)
    online.materialise(store, key, spec, compute.latest_per_entity(spec, table), "bench")
    Blobs(str(tmp / "storage")).write_text(definition_key(key), dump_definition(key, spec))  # what bundle deploy writes
    customers = table[spec.entity_key].unique()
    rng = np.random.default_rng(3)
    requests = sample_rows(max(args.requests * args.batch, args.http_requests), seed=7)
    for r in requests:
        r[spec.entity_key] = str(rng.choice(customers)) if rng.random() < 0.9 else "unknown-customer"
    return uc, key, want, spec, model_dir, store, requests, len(customers)


def in_process(args, tmp: Path, uc, key, want, spec, model_dir, store, requests) -> dict[str, tuple[float, float]]:
    from ml.features import online
    from ml.serving.endpoint_config import ServedModel, promote, update_config
    from ml.serving.engine import Engine

    served = ServedModel(name="bench", version="1", uri="models:/bench/1", path=str(model_dir))
    update_config(tmp / "endpoint", lambda cfg: promote(cfg, served), by="bench", reason="bench")
    engine = Engine(None, tmp / "inference", env="bench")
    engine.endpoint_dir = tmp / "endpoint"
    engine.refresh()
    from ml.serving.schema import for_use_case

    schema = for_use_case(uc.name)  # rows as the endpoint hands them to the engine: validated, typed
    reqs = [schema.request.model_validate_json(json.dumps(r)).model_dump() for r in requests[:args.requests * args.batch]]
    batches = [reqs[i:i + args.batch] for i in range(0, len(reqs), args.batch)]
    lookups = online.Lookups(store, {key: want.features}, {key: spec})
    modes = (("without lookups", None), ("with lookups", lookups))
    took: dict[str, list[float]] = {label: [] for label, _ in modes}
    try:
        for b in batches[:50]:  # warm-up, both ways
            for _, active in modes:
                online._CACHE[uc.name] = active
                engine.score([dict(r) for r in b])
        for b in batches:  # alternating call by call, so both see the same machine load
            for label, active in modes:
                online._CACHE[uc.name] = active
                rows = [dict(r) for r in b]
                t0 = time.perf_counter()
                engine.score(rows)
                took[label].append(time.perf_counter() - t0)
        figures = {label: _percentiles(samples) for label, samples in took.items()}
        alone = []
        for b in batches:
            rows = [dict(r) for r in b]
            t0 = time.perf_counter()
            lookups.augment(rows)
            alone.append(time.perf_counter() - t0)
        figures["lookup alone"] = _percentiles(alone)
    finally:
        online._CACHE.clear()
        engine.close()
    console.print(f"in-process lookups: {lookups.status()['rows']}")
    return figures


def _no_lookups_tree(tmp: Path) -> Path:
    """A directory to run the "without" endpoint from: this checkout's packages, except a copy of
    `usecases/` whose params.yaml files look nothing up (imported first: it is the working dir)."""
    import yaml

    tree = tmp / "no-lookups"
    tree.mkdir()
    for name in ("core", "ml", "bundles", "infra", "conveyor", "bench"):
        (tree / name).symlink_to(servers.ROOT / name)
    shutil.copytree(servers.ROOT / "usecases", tree / "usecases", ignore=shutil.ignore_patterns("__pycache__"))
    for params in (tree / "usecases").glob("*/params.yaml"):
        doc = yaml.safe_load(params.read_text()) or {}
        if doc.pop("feature_tables", None) is not None:
            params.write_text(yaml.safe_dump(doc, sort_keys=False))
    return tree


def over_http(args, tmp: Path, model_dir: Path, requests: list[dict]) -> tuple[dict[str, tuple[float, float]], dict]:
    import httpx

    from core import settings

    store_env = {settings.ONLINE_STORE_ROOT.name: str(tmp / "storage")}
    if args.store_url:
        store_env[settings.ONLINE_STORE_URL.name] = args.store_url
    with contextlib.ExitStack() as stack:  # stops both endpoints, however this ends
        (tmp / "http-with").mkdir()
        (tmp / "http-without").mkdir()
        tree = _no_lookups_tree(tmp)
        started = [("with lookups", stack.enter_context(servers.endpoint(model_dir, tmp / "http-with", extra_env=store_env)).url),
                   ("without lookups", stack.enter_context(servers.endpoint(
                       model_dir, tmp / "http-without", cwd=tree, extra_env={**store_env, "PYTHONPATH": str(tree)})).url)]
        headers = {"Authorization": f"Bearer {servers.TOKEN}"}
        took: dict[str, list[float]] = {label: [] for label, _ in started}
        bodies = [{"rows": [{k: v for k, v in r.items() if k != "transaction_id"}]} for r in requests[:args.http_requests]]
        with httpx.Client(timeout=30, headers=headers) as client:
            warm = bodies[:HTTP_WARMUP]  # untimed, both endpoints
            for i, body in enumerate(warm + bodies):
                for label, url in (started if i % 2 else started[::-1]):  # each goes first half the time
                    t0 = time.perf_counter()
                    resp = client.post(url + "/predict", json=body)
                    elapsed = time.perf_counter() - t0
                    if resp.status_code != 200:
                        raise RuntimeError(f"{label}: POST /predict answered {resp.status_code}: {resp.text[:300]}")
                    if i >= len(warm):
                        took[label].append(elapsed)
            status = {label: client.get(url + "/status").json().get("feature_lookups") for label, url in started}
    return {label: _percentiles(samples) for label, samples in took.items()}, status


def _table(title: str, figures: dict[str, tuple[float, float]]) -> Table:
    console.print(title)
    out = Table()
    for col in ("", "p50 ms", "p99 ms"):
        out.add_column(col, justify="right" if col else "left")
    for label, (p50, p99) in figures.items():
        out.add_row(label, f"{p50:.2f}", f"{p99:.2f}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="in-process scoring calls per mode")
    ap.add_argument("--entities", type=int, default=2000, help="customers in the online store (rows = 40 per customer)")
    ap.add_argument("--batch", type=int, default=1, help="rows per in-process scoring call")
    ap.add_argument("--http-requests", type=int, default=1000, help="HTTP requests per endpoint (one row each)")
    ap.add_argument("--store-url", default=None, help="a PostgreSQL online store (no password: PGPASSWORD) instead of SQLite")
    ap.add_argument("--no-http", action="store_true", help="in process only")
    args = ap.parse_args(argv)

    checks: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        uc, key, want, spec, model_dir, store, requests, customers = _setup(args, tmp)
        load = os.getloadavg()[0]
        figures = in_process(args, tmp, uc, key, want, spec, model_dir, store, requests)
        console.print(_table(f"in process: Engine.score, {args.batch} row(s) per call, {args.requests} calls, "
                             f"{customers} customers in {store.describe()} (load {load:.2f})", figures))
        checks += [Target("in process: with − without lookups, p50", figures["with lookups"][0] - figures["without lookups"][0],
                          TARGETS_MS["in process: with − without lookups, p50"], unit=" ms"),
                   Target("in process: lookup alone, p50", figures["lookup alone"][0],
                          TARGETS_MS["in process: lookup alone, p50"], unit=" ms")]
        if not args.no_http:
            load = os.getloadavg()[0]
            http, status = over_http(args, tmp, model_dir, requests)
            console.print(_table(f"over HTTP: POST /predict, 1 row, {args.http_requests} requests per endpoint, "
                                 f"1 connection (load {load:.2f})", http))
            console.print(f"endpoints' /status feature_lookups: {status}")
            for what, i in (("p50", 0), ("p99", 1)):
                name = f"HTTP: with − without lookups, {what}"
                checks.append(Target(name, http["with lookups"][i] - http["without lookups"][i], TARGETS_MS[name], unit=" ms"))
            counts = (status.get("with lookups") or {}).get(key) or {}
            looked_up = counts.get("hit", 0) + counts.get("missing", 0)
            checks.append(Target("HTTP: requests looked up (hit or missing entity)", float(looked_up),
                                 float(min(HTTP_WARMUP, args.http_requests) + args.http_requests), at_most=False, unit=""))
            checks.append(Target("HTTP: without-lookups endpoint looked nothing up", float(len(status.get("without lookups") or {})),
                                 0.0, unit=""))
    for t in checks:
        console.print(f"{t.what}: {t.measured()} (target {t.bound()}) {t.verdict()}")
    return 0 if all(t.ok for t in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
