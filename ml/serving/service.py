"""The environment's serving endpoint: `bentoml serve ml.serving.service:ConveyorEndpoint`.

Infra starts it per env with CONVEYOR_ENV, CONVEYOR_ENDPOINT_DIR (endpoint config),
CONVEYOR_INFERENCE_TABLE, CONVEYOR_SERVING_TOKENS_FILE and MLFLOW_TRACKING_* set. The code
is fixed; which models it serves comes from the endpoint config (see `engine.py`), or, in a
pinned Bento, from the model it was built with (`pinned.py`). This is the only service and
`schema.py` its only request schema.
"""

from __future__ import annotations

import os

# Before numpy/sklearn load: one native thread per scoring call (see engine.limit_native_threads).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import bentoml

from core import settings
from ml.serving.engine import get_engine
from ml.serving.errors import NoModelDeployed
from ml.serving.gate import GateMiddleware
from ml.serving.schema import Prediction, Transaction

MAX_LATENCY_MS = settings.BATCH_MAX_LATENCY_MS.get()


class _Metrics:
    """Prometheus series next to BentoML's own on /metrics (created lazily, per worker)."""

    def __init__(self):
        self.predictions = bentoml.metrics.Counter(
            name="conveyor_predictions_total", documentation="rows scored",
            labelnames=["served_by", "model_version"])
        self.errors = bentoml.metrics.Counter(
            name="conveyor_model_errors_total", documentation="rows whose model raised (fell back to champion)",
            labelnames=["served_by"])
        self.latency = bentoml.metrics.Histogram(
            name="conveyor_batch_latency_seconds", documentation="model scoring time per batch",
            labelnames=["served_by"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.revision_gauge = bentoml.metrics.Gauge(
            name="conveyor_endpoint_revision", documentation="endpoint config revision being served")

    def observe(self, roles, versions, seconds):
        counts: dict = {}
        for role, version in zip(roles, versions):
            counts[(role, version)] = counts.get((role, version), 0) + 1
        for (role, version), n in counts.items():
            self.predictions.labels(served_by=role, model_version=version).inc(n)
        for role in {r for r, _ in counts}:
            self.latency.labels(served_by=role).observe(seconds)

    def error(self, role, n):
        self.errors.labels(served_by=role).inc(n)

    def revision(self, rev):
        self.revision_gauge.set(rev)


@bentoml.service(
    name="conveyor_endpoint",
    workers=1,
    threads=2,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
)
class ConveyorEndpoint:
    """Fraud scoring endpoint of one Conveyor environment."""

    def __init__(self) -> None:
        self.engine = get_engine(metrics=_Metrics())

    def __is_ready__(self) -> bool:
        return self.engine.ready()

    def _score(self, rows: list[Transaction], target: str) -> list[Prediction]:
        try:
            out = self.engine.score([r.model_dump() for r in rows], target=target)
        except NoModelDeployed as exc:  # raced with a config change; the gate usually answers first
            raise bentoml.exceptions.ServiceUnavailable(f"no {exc} model loaded") from None
        return [Prediction(**o) for o in out]

    # max_latency_ms bounds both how long the adaptive batcher may wait to fill a batch and when
    # it sheds load (503 for requests it predicts will miss it). Too low → 503s on a busy host;
    # too high → the batcher may wait long on a noisy one. The SLA gate checks the real figures.
    @bentoml.api(route="/predict", batchable=True, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: list[Transaction]) -> list[Prediction]:
        """Score transactions (one or many rows); requests arriving together are batched."""
        return self._score(rows, "traffic")

    @bentoml.api(route="/candidate/predict", batchable=True, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS)
    def predict_candidate(self, rows: list[Transaction]) -> list[Prediction]:
        """Score with the staged candidate only (pre-traffic readiness and load tests)."""
        return self._score(rows, "candidate")

    @bentoml.on_shutdown
    def drain(self) -> None:
        """Flush the inference table before the worker exits."""
        self.engine.close()


ConveyorEndpoint.add_asgi_middleware(GateMiddleware)
