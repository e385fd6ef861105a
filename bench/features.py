"""Serving latency with and without feature-table lookups: p50/p99 of the engine's scoring call.

    python -m bench.features [--requests 2000] [--entities 2000] [--batch 1]

In process, one thread, the real `Engine.score` (schema, lookups, features, model, inference
table) on a model of the use case fitted here, and an online store materialised from a
table computed by `ml.features.compute` over generated rows. "without" serves the same
engine with lookups switched off (the use case's looked-up features are then its
fallbacks); "lookup only" times `Lookups.augment` alone. HTTP and batching add the same
to both, so the difference is what a lookup costs a request (bench/serving.py measures
the endpoint over HTTP).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import project
from bench.targets import Target

# relative, as bench/serving.py's: what a lookup adds to a request, not the machine's absolute speed
TARGETS_MS = {"with − without lookups, p50": 2.0, "lookup alone, p50": 2.0}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--entities", type=int, default=2000, help="customers in the online store (rows = 40 per customer)")
    ap.add_argument("--batch", type=int, default=1, help="rows per scoring call")
    args = ap.parse_args(argv)
    console = Console()

    import mlflow.sklearn

    from bundles.resources.feature_tables import FeatureTable
    from ml.features import compute, online
    from ml.features.lookups import declared
    from ml.features.pit import as_of
    from ml.serving.endpoint_config import ServedModel, promote, update_config
    from ml.serving.client import sample_rows
    from ml.serving.engine import Engine

    uc = project.use_case()
    wanted = declared(uc)
    if not wanted:
        console.print(f"use case {uc.name!r} looks nothing up (params.yaml feature_tables)")
        return 1
    import yaml

    tables = yaml.safe_load((Path(__file__).resolve().parents[1] / "resources" / "features.yml").read_text())
    key, want = next(iter(wanted.items()))
    spec = FeatureTable.model_validate(tables["resources"]["feature_tables"][key])
    raw = project.transactions(args.entities * 40, seed=11)
    table = compute.compute_table(key, spec, raw)
    joined = as_of(raw, table, spec, want.features, uc.timestamp)
    model = uc.estimator(project.params().train).fit(uc.build_features(joined), raw[uc.label].to_numpy())

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        online.materialise(online.store_file(tmp, key), key, spec, compute.latest_per_entity(spec, table), "bench")
        mlflow.sklearn.save_model(model, str(tmp / "model"),
                                  skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"])
        served = ServedModel(name="bench", version="1", uri="models:/bench/1", path=str(tmp / "model"))
        update_config(tmp / "endpoint", lambda cfg: promote(cfg, served), by="bench", reason="bench")
        engine = Engine(None, tmp / "inference", env="bench")
        engine.endpoint_dir = tmp / "endpoint"
        engine.refresh()
        customers = table[spec.entity_key].unique()
        rng = np.random.default_rng(3)
        requests = sample_rows(args.requests * args.batch, seed=7)
        for r in requests:
            r[spec.entity_key] = str(rng.choice(customers)) if rng.random() < 0.9 else "unknown-customer"
        batches = [requests[i:i + args.batch] for i in range(0, len(requests), args.batch)]

        newest = table[spec.timestamp].max().timestamp()  # requests arrive an hour after the last refresh
        lookups = online.Lookups(tmp, {key: want.features}, {key: spec}, clock=lambda: newest + 3600.0)
        figures = {}
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
            took = []
            for b in batches:
                rows = [dict(r) for r in b]
                t0 = time.perf_counter()
                lookups.augment(rows)
                took.append(time.perf_counter() - t0)
            figures["lookup only"] = _percentiles(took)
        finally:
            online._CACHE.clear()
            engine.close()

    out = Table(title=f"Engine.score, {args.batch} row(s) per call, {len(batches)} calls, {len(customers)} customers "
                      f"online (load {os.getloadavg()[0]:.2f})")
    for col in ("", "p50 ms", "p99 ms"):
        out.add_column(col, justify="right" if col else "left")
    for label, (p50, p99) in figures.items():
        out.add_row(label, f"{p50:.2f}", f"{p99:.2f}")
    console.print(out)
    added = figures["with lookups"][0] - figures["without lookups"][0]
    checks = [Target(what, value, TARGETS_MS[what], unit=" ms") for what, value in
              (("with − without lookups, p50", added), ("lookup alone, p50", figures["lookup only"][0]))]
    for t in checks:
        console.print(f"{t.what}: {t.measured()} (target {t.bound()}) {t.verdict()}")
    print(f"lookups: {lookups.status()}")
    return 0 if all(t.ok for t in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
