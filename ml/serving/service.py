"""The environment's serving endpoint: `bentoml serve ml.serving.service:ConveyorEndpoint`.

In an environment it runs as a Bento built from the deployed code (`bento.py`), started by the
env's launcher (`launcher.py`) with CONVEYOR_ENV, CONVEYOR_ENDPOINT_DIR (endpoint configs),
CONVEYOR_INFERENCE_TABLE, CONVEYOR_SERVING_TOKENS_FILE, BENTOML_HOME (the env's model store)
and MLFLOW_TRACKING_* set. Which models it serves comes from the endpoint configs (see
`engine.py`), each loaded by its tag from the BentoML model store. This is the only service,
with the one request schema of each endpoint's use case.

One process serves every endpoint of the env (`endpoints.py`): the default one on `/predict`
and `/candidate/predict` (BentoML APIs, adaptive batching), each named one on
`/<name>/predict` (`router.py`, a mounted FastAPI app, the same batcher). Each endpoint's
request/response models are derived from its use case (`schema.py`).
"""

from __future__ import annotations

import os

# Before numpy/sklearn load: one native thread per scoring call (see engine.limit_native_threads).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import bentoml

from core import settings
from ml.serving.endpoints import default_binding
from ml.serving.engine import get_engine
from ml.serving.errors import NoModelDeployed
from ml.serving.gate import GateMiddleware
from ml.serving.metrics import Metrics
from ml.serving.router import ROUTES, get_endpoint_set
from ml.serving.schema import for_use_case

MAX_LATENCY_MS = settings.BATCH_MAX_LATENCY_MS.get()
# The default endpoint's schema is fixed when the process starts (its APIs are typed by it).
DEFAULT_SCHEMA = for_use_case(default_binding(settings.ENDPOINT_DIR.get()).use_case)
Row = DEFAULT_SCHEMA.request
Answer = DEFAULT_SCHEMA.response


@bentoml.asgi_app(ROUTES, path="/")
@bentoml.service(
    name="conveyor_endpoint",
    workers=1,
    threads=2,
    traffic={"timeout": 30},
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

    def _score(self, rows: list[Row], target: str) -> list[Answer]:
        try:
            out = self.engine.score([r.model_dump() for r in rows], target=target)
        except NoModelDeployed as exc:  # raced with a config change; the gate usually answers first
            raise bentoml.exceptions.ServiceUnavailable(f"no {exc} model loaded") from None
        return [Answer(**o) for o in out]

    # max_latency_ms bounds both how long the adaptive batcher may wait to fill a batch and when
    # it sheds load (503 for requests it predicts will miss it). Too low → 503s on a busy host;
    # too high → the batcher may wait long on a noisy one. The SLA gate checks the real figures.
    @bentoml.api(route="/predict", batchable=True, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: list[Row]) -> list[Answer]:
        """Score rows of the default endpoint (one or many); requests arriving together are batched."""
        return self._score(rows, "traffic")

    @bentoml.api(route="/candidate/predict", batchable=True, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS)
    def predict_candidate(self, rows: list[Row]) -> list[Answer]:
        """Score with the default endpoint's staged candidate only (pre-traffic readiness and load tests)."""
        return self._score(rows, "candidate")

    @bentoml.on_shutdown
    def drain(self) -> None:
        """Flush the inference tables before the worker exits."""
        self.named.close()
        self.engine.close()


ConveyorEndpoint.add_asgi_middleware(GateMiddleware)
