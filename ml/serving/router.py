"""The named endpoints of the serving process: one engine and one set of routes each.

`ROUTES` is a FastAPI app the BentoML service mounts (`bentoml.asgi_app`); an `EndpointSet`
(one per worker) watches the bindings under the endpoint storage (`ml.serving.endpoints`)
and, for each named endpoint, starts an `Engine` on its own config dir and inference table
and adds its routes, built from its use case's `ServingSchema`:

- `POST /<name>/predict`, `POST /<name>/candidate/predict` — body and answer models of that
  use case, so FastAPI validates each field and `/<name>/openapi.json` documents them;
- requests go through BentoML's adaptive batcher (`CorkDispatcher`, the algorithm behind
  `@bentoml.api(batchable=True)`), one per endpoint and target: rows of requests arriving
  together are scored as one batch, and requests it predicts will miss the latency budget
  are shed with a 503.

The gate (`gate.py`) runs in front: bearer tokens, 503 before any model serves, nicer 4xx,
`/<name>/status`. An endpoint whose binding goes away loses its routes (404) and its engine.
"""

import inspect
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.utils import get_openapi

from core import settings
from ml.serving import endpoints
from ml.serving.engine import Engine
from ml.serving.errors import NoModelDeployed
from ml.serving.schema import ServingSchema, for_use_case

log = logging.getLogger("conveyor.serving")
MAX_BATCH_SIZE = 256
TARGETS = {"predict": "traffic", "candidate/predict": "candidate"}

ROUTES = FastAPI(title="Conveyor named endpoints", docs_url=None, redoc_url=None, openapi_url=None)


def _overloaded():
    raise HTTPException(503, "the endpoint is overloaded: its batcher would miss the latency budget; retry")


def _batcher(engine: Engine, target: str, max_latency_ms: int):
    """An async `rows -> answers` that scores the rows of concurrent requests as one batch."""
    from bentoml._internal.marshal.dispatcher import CorkDispatcher

    dispatcher = CorkDispatcher(max_latency_in_ms=max_latency_ms, max_batch_size=MAX_BATCH_SIZE,
                                fallback=_overloaded, get_batch_size=len)

    def score(batches: list[list[dict]]) -> list[list[dict]]:
        flat = [row for rows in batches for row in rows]
        out = engine.score(flat, target=target)
        answers, start = [], 0
        for rows in batches:
            answers.append(out[start:start + len(rows)])
            start += len(rows)
        return answers

    return dispatcher(score)


def _route(schema: ServingSchema, batched, summary: str):
    """A FastAPI endpoint function whose signature carries the use case's body model."""

    async def predict(body):
        try:
            return await batched([row.model_dump() for row in body.rows])
        except NoModelDeployed as exc:  # raced with a config change; the gate usually answers first
            raise HTTPException(503, f"no {exc} model loaded") from None

    predict.__signature__ = inspect.Signature(
        [inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=schema.body)])
    predict.__doc__ = summary
    return predict


@dataclass
class NamedEndpoint:
    binding: endpoints.Binding
    engine: Engine
    schema: ServingSchema
    routes: list

    def openapi(self) -> dict:
        uc = self.schema.use_case
        return get_openapi(title=f"{self.binding.name} ({uc.name})", version=str(self.engine.snapshot.config.revision),
                           description=uc.spec.description or None, routes=self.routes)


class EndpointSet:
    def __init__(self, endpoint_root: Path | None, inference_root: Path | None, *, env: str = "local",
                 metrics: Any = None, app: FastAPI = ROUTES, poll_s: float = 1.0, engine_poll_s: float = 0.25):
        self.endpoint_root = Path(endpoint_root) if endpoint_root else None
        self.inference_root = Path(inference_root) if inference_root else None
        self.env, self.metrics, self.app = env, metrics, app
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
        routes_before = len(self.app.router.routes)
        for path, target in TARGETS.items():
            batched = _batcher(engine, target, self.max_latency_ms)
            what = "with the staged candidate only" if target == "candidate" else "(requests arriving together are batched)"
            self.app.add_api_route(f"/{name}/{path}", _route(schema, batched, f"Score {schema.use_case.name} rows {what}."),
                                   methods=["POST"], response_model=list[schema.response],
                                   name=f"{name}:{target}", tags=[name])
        routes = self.app.router.routes[routes_before:]
        self._endpoints[name] = NamedEndpoint(binding, engine, schema, routes)
        self.app.openapi_schema = None
        log.info("serving endpoint %s: use case %s", name, binding.use_case)

    def _remove(self, name: str) -> None:
        ep = self._endpoints.pop(name)
        self.app.router.routes = [r for r in self.app.router.routes if r not in ep.routes]
        self.app.openapi_schema = None
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
    """The worker's named endpoints, from the env vars infra sets for the serving process.

    A pinned Bento (`ml.serving.pinned`) serves its one model and no named endpoint.
    """
    global _SET
    with _SET_LOCK:
        if _SET is None:
            from ml.serving import pinned

            root = None if pinned.read_pin() else settings.ENDPOINT_DIR.get()
            _SET = EndpointSet(root, settings.INFERENCE_TABLE.get(), env=settings.ENV.get() or "local",
                               metrics=metrics)
        return _SET
