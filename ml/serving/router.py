"""The named endpoints of the serving process: one engine and one predict route each.

An `EndpointSet` (one per worker) watches the bindings under the endpoint storage
(`ml.serving.endpoints`) and, for each named endpoint, starts an `Engine` on its own config
dir and inference table and a `PredictRoute` (`predict.py`) built from its use case's
`ServingSchema`:

- `POST /<name>/predict`, `POST /<name>/candidate/predict` — body and answer models of that
  use case; the gate (`gate.py`) dispatches them to the route after the token check;
- `GET /<name>/openapi.json` documents them (`openapi.py`), `GET /<name>/status` (token).

Rows of requests arriving together are scored as one batch (`batcher.py`: no waiting when
alone, shedding with 503 past capacity). An endpoint whose binding goes away loses its
routes (404) and its engine.
"""

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from ml.serving import endpoints, openapi
from ml.serving.engine import Engine
from ml.serving.predict import PredictRoute
from ml.serving.schema import ServingSchema, for_use_case

log = logging.getLogger("conveyor.serving")

@dataclass
class NamedEndpoint:
    binding: endpoints.Binding
    engine: Engine
    schema: ServingSchema
    route: PredictRoute

    def openapi(self) -> dict:
        cfg = self.engine.snapshot.config
        return openapi.document(self.schema, prefix=f"/{self.binding.name}", sla=cfg.sla, version=str(cfg.revision),
                                title=f"{self.binding.name} ({self.schema.use_case.name})")


class EndpointSet:
    def __init__(self, endpoint_root: Path | None, inference_root: Path | None, *, env: str = "local",
                 metrics: Any = None, poll_s: float = 1.0, engine_poll_s: float = 0.25):
        self.endpoint_root = Path(endpoint_root) if endpoint_root else None
        self.inference_root = Path(inference_root) if inference_root else None
        self.env, self.metrics = env, metrics
        self.engine_poll_s = engine_poll_s
        self.max_latency_ms = settings.BATCH_MAX_LATENCY_MS.get()
        self._endpoints: dict[str, NamedEndpoint] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refresh()
        self._watcher = None
        if self.endpoint_root is not None:
            self._watcher = threading.Thread(target=self._watch, args=(poll_s,), name="endpoint-bindings", daemon=True)
            self._watcher.start()

    def get(self, name: str) -> NamedEndpoint | None:
        return self._endpoints.get(name)

    def names(self) -> list[str]:
        return sorted(self._endpoints)

    def _watch(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            try:
                self.refresh()
            except Exception:  # keep serving what is bound; the next poll retries
                log.exception("reading the endpoint bindings failed")

    def refresh(self) -> None:
        """Start the endpoints newly bound, restart the rebound, stop the unbound."""
        wanted = endpoints.named_bindings(self.endpoint_root)
        with self._lock:
            for name in [n for n, ep in self._endpoints.items() if wanted.get(n) != ep.binding]:
                self._remove(name)
            for name, binding in wanted.items():
                if name not in self._endpoints:
                    try:
                        self._add(binding)
                    except Exception:
                        log.exception("cannot serve endpoint %s (use case %s)", name, binding.use_case)

    def _add(self, binding: endpoints.Binding) -> None:
        name = binding.name
        schema = for_use_case(binding.use_case)
        table = endpoints.table_dir(self.inference_root, name) if self.inference_root else None
        engine = Engine(endpoints.config_dir(self.endpoint_root, name), table, env=self.env,
                        poll_s=self.engine_poll_s, metrics=self.metrics.of(name) if self.metrics else None,
                        schema=schema, name=name)
        self._endpoints[name] = NamedEndpoint(binding, engine, schema, PredictRoute(engine, schema, self.max_latency_ms))
        log.info("serving endpoint %s: use case %s", name, binding.use_case)

    def _remove(self, name: str) -> None:
        ep = self._endpoints.pop(name)
        ep.route.close()
        ep.engine.close()
        log.info("stopped serving endpoint %s", name)

    def ready(self) -> bool:
        return all(ep.engine.ready() for ep in list(self._endpoints.values()))

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for name in list(self._endpoints):
                self._remove(name)


_SET: EndpointSet | None = None
_SET_LOCK = threading.Lock()


def get_endpoint_set(metrics: Any = None) -> EndpointSet:
    """The worker's named endpoints, from the env vars infra sets for the serving process."""
    global _SET
    with _SET_LOCK:
        if _SET is None:
            root = settings.ENDPOINT_DIR.get()
            _SET = EndpointSet(root, settings.INFERENCE_TABLE.get(), env=settings.ENV.get() or "local",
                               metrics=metrics)
        return _SET
