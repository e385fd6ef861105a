"""ASGI middleware in front of the BentoML app: auth, clear errors, `/status`.

- POST without a valid bearer token → 401 (tokens are sha256 digests in the JSON file at
  $CONVEYOR_SERVING_TOKENS_FILE, re-read when it changes);
- `/predict` before any model is deployed → 503 with a message saying so;
- BentoML's schema-validation 400 is rewritten so the message names each bad field;
- `GET /status` → what this worker serves (revision, versions, rollout state).

The same for each named endpoint (`ml.serving.endpoints`) under `/<name>/`: `/<name>/predict`,
`/<name>/candidate/predict`, `GET /<name>/status`, and `GET /<name>/openapi.json` (its own schema).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core import settings

OPEN_PATHS = {"/livez", "/readyz", "/healthz", "/metrics", "/status", "/", "/docs.json", "/schema.json"}
PREDICT_PATHS = {"/predict": "traffic", "/candidate/predict": "candidate"}
NAMED_PATHS = {"predict": "traffic", "candidate/predict": "candidate"}


class TokenSet:
    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._mtime: int | None = None
        self._digests: frozenset[str] = frozenset()

    def digests(self) -> frozenset[str]:
        if self.path is None:
            return frozenset()
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return frozenset()
        if mtime != self._mtime:
            self._digests = frozenset(str(d).lower() for d in json.loads(self.path.read_text() or "[]"))
            self._mtime = mtime
        return self._digests

    def allows(self, token: str) -> bool:
        return hashlib.sha256(token.encode()).hexdigest() in self.digests()


def _field_path(loc) -> str:
    parts = [p for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def explain_validation(body: bytes) -> dict | None:
    """BentoML's pydantic error → {"error": "rows[0].amount: Input should be …", "fields": [...]}."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    detail = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(detail, list) or not detail:
        return None
    fields = []
    for d in detail:
        msg = d.get("msg", "invalid")
        if d.get("type") == "extra_forbidden":
            msg = "unknown field (not in the schema)"
        fields.append({"field": _field_path(d.get("loc", [])), "problem": msg})
    return {"error": "; ".join(f"{f['field']}: {f['problem']}" for f in fields), "fields": fields}


async def _json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class GateMiddleware:
    def __init__(self, app, engine_factory=None, endpoints_factory=None):
        self.app = app
        self.tokens = TokenSet(settings.SERVING_TOKENS_FILE.get())
        self.engine_factory = engine_factory
        self.endpoints_factory = endpoints_factory

    def _engine(self):
        from ml.serving.engine import get_engine

        return (self.engine_factory or get_engine)()

    def _named(self, path: str):
        """(named endpoint, rest of the path) when `path` is under a served endpoint's name, else (None, "")."""
        name, _, rest = path.lstrip("/").partition("/")
        if not rest:
            return None, ""
        from ml.serving.router import get_endpoint_set

        return (self.endpoints_factory or get_endpoint_set)().get(name), rest

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path == "/status" and scope["method"] == "GET":
            return await _json(send, 200, self._engine().status())
        if path in OPEN_PATHS and scope["method"] == "GET":
            return await self.app(scope, receive, send)
        named, rest = self._named(path) if path not in PREDICT_PATHS else (None, "")
        if named is not None and scope["method"] == "GET" and rest in ("status", "openapi.json"):
            return await _json(send, 200, named.engine.status() if rest == "status" else named.openapi())
        auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return await _json(send, 401, {"error": "missing bearer token: send 'Authorization: Bearer <serving token>'"},
                               [(b"www-authenticate", b"Bearer")])
        if not self.tokens.allows(token.strip()):
            return await _json(send, 401, {"error": "invalid serving token for this environment"},
                               [(b"www-authenticate", b"Bearer")])
        target = PREDICT_PATHS.get(path) if named is None else NAMED_PATHS.get(rest)
        if target is None:
            return await self.app(scope, receive, send)
        engine = self._engine() if named is None else named.engine
        role = "candidate" if target == "candidate" else "champion"
        if engine.snapshot.get(role) is None:
            return await _json(send, 503, self._unavailable(engine, role), [(b"retry-after", b"2")])
        return await self.app(scope, receive, self._rewrite_400(send))

    @staticmethod
    def _unavailable(engine, role: str) -> dict:
        """Why there is nothing to answer with: still loading, failed to load, or never deployed."""
        from ml.serving.endpoint_config import read_config

        wanted = read_config(engine.endpoint_dir) if engine.endpoint_dir is not None else None
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

    @staticmethod
    def _rewrite_400(send):
        held: dict = {}

        async def wrapped(message):
            if message["type"] == "http.response.start" and message["status"] in (400, 422):
                held["start"] = message
                held["body"] = b""
                return
            if "start" in held and message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                start = held.pop("start")
                nicer = explain_validation(held["body"])
                if nicer is None:
                    await send(start)
                    await send({"type": "http.response.body", "body": held["body"]})
                    return
                await _json(send, 422, nicer)
                return
            await send(message)

        return wrapped
