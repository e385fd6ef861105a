"""The environment's serving endpoint: `bentoml serve ml.serving.service:ConveyorEndpoint`.

In an environment it runs as a Bento built from the deployed code (`bento.py`), started by the
env's launcher (`launcher.py`) with CONVEYOR_ENV, CONVEYOR_ENDPOINT_DIR (endpoint configs),
CONVEYOR_INFERENCE_TABLE, CONVEYOR_SERVING_TOKENS_FILE, BENTOML_HOME (the env's model store)
and MLFLOW_TRACKING_* set. Which models it serves comes from the endpoint configs (see
`engine.py`), each loaded by its tag from the BentoML model store. This is the only service.

One process serves every endpoint of the env (`endpoints.py`). The service declares no
`@bentoml.api`: the gate middleware (`gate.py`) answers every predict route itself — the
default endpoint's `/predict` and `/candidate/predict`, each named one's `/<name>/predict`
and `/<name>/candidate/predict` — with that endpoint's `PredictRoute` (`predict.py`: limits,
schema from its use case via `schema.py`, batching and shedding in `batcher.py`), as well as
the tokens, `/status` and the OpenAPI documents. BentoML provides the process, the workers,
`/livez`, `/readyz` (`__is_ready__`), `/metrics` and the shutdown hook. `UNMATCHED`, an
empty FastAPI app, is mounted only so BentoML has an ASGI app to serve; the gate sits in front of
BentoML's whole app (`_GateInFront`), and requests it does not answer itself reach BentoML's
own routes through BentoML's middleware (else 404).
"""

from __future__ import annotations

import os

# Before numpy/sklearn load: one native thread per scoring call (see engine.limit_native_threads).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# BentoML's tracing samples nothing unless `tracing.sample_rate` is configured (Conveyor configures
# none), yet its OpenTelemetry middleware still built a span per request and per send: ~15% of a
# worker's CPU at 64 connections. Set OTEL_SDK_DISABLED=false to trace with a configured sampler.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

import bentoml
from fastapi import FastAPI

from ml.serving.engine import get_engine
from ml.serving.gate import GateMiddleware
from ml.serving.metrics import Metrics
from ml.serving.router import get_endpoint_set

UNMATCHED = FastAPI(title="Conveyor endpoint", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.asgi_app(UNMATCHED, path="/")
@bentoml.service(
    name="conveyor_endpoint",
    workers=1,
    threads=2,
    traffic={"timeout": 30},
    # the predict routes skip BentoML's OpenTelemetry middleware (it parsed and redacted each URL
    # even with tracing off); /livez, /metrics, /status and the docs keep it
    tracing={"excluded_urls": [r"/predict(\?|$)"]},
    logging={"access": {"enabled": False}},
)
class ConveyorEndpoint:
    """The scoring endpoints of one Conveyor environment."""

    def __init__(self) -> None:
        metrics = Metrics()
        self.engine = get_engine(metrics=metrics)
        self.named = get_endpoint_set(metrics=metrics)

    def __is_ready__(self) -> bool:
        return self.engine.ready() and self.named.ready()

    @bentoml.on_shutdown
    def drain(self) -> None:
        """Flush the inference tables before the worker exits."""
        self.named.close()
        self.engine.close()


class _GateInFront(type(ConveyorEndpoint)):
    """The service, with the gate in front of BentoML's whole middleware stack rather than inside it.

    `add_asgi_middleware` would put the gate after BentoML's error, request-metrics, tracing and
    timeout middlewares: ~20% of the worker's event loop at 64 connections went to them on the
    predict routes (four labelled Prometheus series per request, a span check, a wrapped `send`
    per layer). The gate answers the predict routes, `/status`, `/livez` and the docs itself;
    everything else (`/readyz`, `/metrics`, BentoML's own routes) passes through that stack as
    before. The predict routes count and time their requests in `conveyor_requests_total` and
    `conveyor_request_duration_seconds` (metrics.py) instead of BentoML's request series."""

    __slots__ = ()

    def to_asgi(self, is_main: bool = True):
        return GateMiddleware(super().to_asgi(is_main))


ConveyorEndpoint.__class__ = _GateInFront
