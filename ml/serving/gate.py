"""ASGI middleware in front of the BentoML app: auth, the predict routes, `/status`, the docs.

- `GET /livez` is answered first, by the gate itself: liveness must stay cheap under overload;
- every route but health (`/livez`, `/readyz`, `/healthz`) and the docs (`/`, `/docs.json`,
  `/openapi.json`, `/<name>/openapi.json`) needs a valid bearer token → else 401 (tokens are
  sha256 digests in the JSON file at $CONVEYOR_SERVING_TOKENS_FILE, re-read when it
  changes). That includes `/status`, `/<name>/status` and `/metrics`: they name the served
  versions and traffic;
- a predict route with any method but POST → 405; before any model is deployed → 503
  saying so (with Retry-After); otherwise the endpoint's `PredictRoute` answers it
  (`predict.py`: limits → 413, schema → 422, batching, shedding → 503);
- `GET /status` → what this worker serves (revision, versions, rollout state);
- `GET /docs.json`, `/openapi.json` → the default endpoint's OpenAPI (`openapi.py`).

The same for each named endpoint (`ml.serving.endpoints`) under `/<name>/`: `/<name>/predict`,
`/<name>/candidate/predict`, `GET /<name>/status`, and `GET /<name>/openapi.json` (its own schema).
"""

from __future__ import annotations

from core import settings
from ml.serving.predict import PredictRoute, answer
from ml.serving.tokens import OPEN_PATHS, TokenSet, bearer

DOC_PATHS = {"/docs.json", "/openapi.json"}
PREDICT_PATHS = {"/predict": "traffic", "/candidate/predict": "candidate"}
NAMED_PATHS = {"predict": "traffic", "candidate/predict": "candidate"}
LIVE = {"status": "alive"}


class GateMiddleware:
    def __init__(self, app, engine_factory=None, endpoints_factory=None):
        self.app = app
        self.tokens = TokenSet(settings.SERVING_TOKENS_FILE.get())
        self.engine_factory = engine_factory
        self.endpoints_factory = endpoints_factory
        self._default: PredictRoute | None = None
        self._default_engine = None
        self._doc: tuple[int, dict] | None = None  # (config revision, the default endpoint's OpenAPI)
        self._wanted: dict = {}  # endpoint dir -> (endpoint.json mtime, its config): read once per change

    def _engine(self):
        """The worker's default engine, looked up once (not under `get_engine`'s lock per request)."""
        if self._default_engine is None:
            from ml.serving.engine import get_engine

            self._default_engine = (self.engine_factory or get_engine)()
        return self._default_engine

    def _named(self, path: str):
        """(named endpoint, rest of the path) when `path` is under a served endpoint's name, else (None, "")."""
        name, _, rest = path.lstrip("/").partition("/")
        if not rest:
            return None, ""
        from ml.serving.router import get_endpoint_set

        return (self.endpoints_factory or get_endpoint_set)().get(name), rest

    def _default_route(self) -> PredictRoute:
        if self._default is None:
            engine = self._engine()
            self._default = PredictRoute(engine, engine.schema, settings.BATCH_MAX_LATENCY_MS.get())
        return self._default

    def _default_doc(self) -> dict:
        """Built once per config revision (it documents the revision's SLA limits), not per request."""
        from ml.serving.openapi import document

        engine = self._engine()
        cfg = engine.snapshot.config
        if self._doc is None or self._doc[0] != cfg.revision:
            self._doc = (cfg.revision, document(engine.schema, version=str(cfg.revision), sla=cfg.sla, default=True,
                                                title=f"Conveyor endpoint ({engine.env}, {engine.schema.use_case.name})"))
        return self._doc[1]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope["method"]
        if path == "/livez" and method in ("GET", "HEAD"):
            # Liveness first and cheap: answered here, before anything else (no token, routing,
            # metrics or tracing middleware), so a worker that sheds a flood of requests still
            # says it is alive (bench.stress probes it at its top level).
            return await answer(send, 200, LIVE)
        if path in OPEN_PATHS and method in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        if path in DOC_PATHS and method == "GET":
            return await answer(send, 200, self._default_doc())
        named, rest = self._named(path) if path not in PREDICT_PATHS else (None, "")
        if named is not None and rest == "openapi.json" and method == "GET":
            return await answer(send, 200, named.openapi())
        target = PREDICT_PATHS.get(path) if named is None else NAMED_PATHS.get(rest)
        if target is not None and method != "POST":
            return await answer(send, 405, {"error": f"{method} is not allowed on {path}: use POST"},
                                [(b"allow", b"POST")])
        token = bearer(scope)
        if not token:
            return await answer(send, 401, {"error": "missing bearer token: send 'Authorization: Bearer <serving token>'"},
                                [(b"www-authenticate", b"Bearer")])
        if not self.tokens.allows(token):
            return await answer(send, 401, {"error": "invalid serving token for this environment"},
                                [(b"www-authenticate", b"Bearer")])
        if path == "/status" or (named is not None and rest == "status"):
            if method != "GET":
                return await answer(send, 405, {"error": f"{method} is not allowed on {path}: use GET"},
                                    [(b"allow", b"GET")])
            return await answer(send, 200, (named.engine if named is not None else self._engine()).status())
        if target is None:
            return await self.app(scope, receive, send)
        engine = self._engine() if named is None else named.engine
        role = "candidate" if target == "candidate" else "champion"
        if engine.snapshot.get(role) is None:
            return await answer(send, 503, self._unavailable(engine, role), [(b"retry-after", b"2")])
        route = self._default_route() if named is None else named.route
        return await route(scope, receive, send, target)

    def _wanted_config(self, endpoint_dir):
        """The endpoint config on disk, re-read only when the file changed (a 503 storm reads it once)."""
        from ml.serving.endpoint_config import read_config

        try:
            mtime = (endpoint_dir / "endpoint.json").stat().st_mtime_ns
        except OSError:
            mtime = None
        known = self._wanted.get(endpoint_dir)
        if known is None or known[0] != mtime:
            known = self._wanted[endpoint_dir] = (mtime, read_config(endpoint_dir))
        return known[1]

    def _unavailable(self, engine, role: str) -> dict:
        """Why there is nothing to answer with: still loading, failed to load, or never deployed."""
        wanted = self._wanted_config(engine.endpoint_dir) if engine.endpoint_dir is not None else None
        spec = getattr(wanted, role, None) if wanted is not None else None
        where = f"the {engine.env} endpoint" if engine.name is None else f"endpoint {engine.name} of the {engine.env} env"
        if spec is not None and engine.load_error:
            msg = f"{spec.name} v{spec.version} failed to load on {where}: {engine.load_error}"
        elif spec is not None:
            msg = f"{spec.name} v{spec.version} is loading on {where}; retry shortly"
        elif role == "candidate":
            msg = f"no candidate model is staged on {where}"
        else:
            msg = (f"no model is deployed on {where} yet "
                   "(a training job's update_endpoint task deploys the champion)")
        return {"error": msg, "revision": engine.snapshot.config.revision}
