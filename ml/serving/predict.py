"""`POST …/predict` and `POST …/candidate/predict` of one endpoint, as a plain ASGI handler.

The gate (`gate.py`) has already checked the token and that a model is loaded; then, in order:

1. the body's size against `sla.max_body_bytes` (Content-Length first, then while reading) → 413;
2. the body against the use case's schema (`schema.body`, pydantic from JSON bytes) → 422
   naming each bad field — unknown fields, wrong types, values outside the declared ranges,
   NaN/Infinity, out-of-range times (see `schema.py`);
3. the number of rows against `sla.max_rows_per_request` → 413; no rows → `[]` with 200
   (a batch of nothing has nothing to answer — not an error);
4. the rows go to the endpoint's `Batcher` (scored with concurrent requests, at once when
   alone) → one answer per row; past capacity → 503 with Retry-After — checked before the
   body is validated (the batcher's queue, and how late the event loop runs), so shedding is cheap.

The limits are the endpoint's own: its config's `sla` (the bundle's `serving_endpoints`
resource sets them), read per request so a deploy changes them without a restart. Answers
are the engine's dicts, already in the response model's field order, serialised as they are.
"""

from __future__ import annotations

import time

import orjson
from pydantic import ValidationError

from ml.serving.batcher import Batcher, LoopLag
from ml.serving.errors import NoModelDeployed, Overloaded
from ml.serving.schema import ServingSchema

TARGETS = ("traffic", "candidate")
# A late event loop sheds only with this many requests in flight: on a host busy with other
# work the loop is late too, and light traffic must not be refused for it.
SHED_ON_LAG_FROM = 32


def field_path(loc) -> str:
    """pydantic's `("rows", 0, "amount")` → `rows[0].amount`."""
    out = ""
    for p in loc:
        if p == "body":
            continue
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def explain(errors: list[dict]) -> dict:
    """pydantic's errors → {"error": "rows[0].amount: Input should be …", "fields": [...]}."""
    fields = []
    for d in errors:
        msg = "unknown field (not in the schema)" if d.get("type") == "extra_forbidden" else d.get("msg", "invalid")
        fields.append({"field": field_path(d.get("loc", ())), "problem": msg})
    return {"error": "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:10]), "fields": fields[:50]}


async def answer(send, status: int, payload, headers: list | None = None) -> int:
    """Send `payload` as JSON with `status`; returns the status (the predict route counts it)."""
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
    return status


def too_large(send, limit: str, maximum: int, what: str):
    return answer(send, 413, {"error": f"request too large: {what} (limit sla.{limit} = {maximum}); "
                                       "split it into smaller requests", "limit": f"sla.{limit}", "maximum": maximum})


class PredictRoute:
    """The predict routes of one endpoint: its engine, its schema, one batcher per target."""

    def __init__(self, engine, schema: ServingSchema, budget_ms: float):
        self.engine, self.schema = engine, schema
        self.batchers = {t: Batcher(lambda rows, t=t: engine.score(rows, target=t), budget_ms=budget_ms,
                                    name=f"score-{engine.name or 'default'}-{t}") for t in TARGETS}
        self.budget_ms = budget_ms
        self.lag = LoopLag()
        self.inflight = 0

    async def _body(self, receive, limit: int) -> bytes | None:
        """The request body, or None once it grows past `limit` bytes."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def __call__(self, scope, receive, send, target: str) -> None:
        self.inflight += 1
        started = time.perf_counter()
        status = 500
        try:
            status = await self._handle(scope, receive, send, target)
        finally:
            self.inflight -= 1
            metrics = getattr(self.engine, "_metrics", None)
            if metrics is not None:
                metrics.request(target, status, time.perf_counter() - started)

    def _overloaded(self, target: str) -> bool:
        return self.batchers[target].saturated() or (self.inflight >= SHED_ON_LAG_FROM
                                                     and self.lag.lag_ms > self.budget_ms)

    async def _handle(self, scope, receive, send, target: str) -> int:
        sla = self.engine.snapshot.config.sla
        length = next((v for k, v in scope.get("headers") or [] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > sla.max_body_bytes:
            return await too_large(send, "max_body_bytes", sla.max_body_bytes, f"a {int(length)}-byte body")
        body = await self._body(receive, sla.max_body_bytes)
        if body is None:
            return await too_large(send, "max_body_bytes", sla.max_body_bytes, "the body")
        self.lag.start()
        if self._overloaded(target):
            return await answer(send, 503, {"error": "the endpoint is overloaded: its queue is over its "
                                                     f"{self.budget_ms:.0f} ms budget; retry after a second"},
                                [(b"retry-after", b"1")])
        try:
            rows = self.schema.body.model_validate_json(body).rows
        except ValidationError as exc:
            return await answer(send, 422, explain(exc.errors(include_url=False, include_input=False)))
        if len(rows) > sla.max_rows_per_request:
            return await too_large(send, "max_rows_per_request", sla.max_rows_per_request, f"{len(rows)} rows")
        if not rows:
            return await answer(send, 200, [])
        try:
            # a row model's fields are plain values (no nested models): its __dict__ is its model_dump()
            out = await self.batchers[target].submit([dict(r.__dict__) for r in rows])
        except Overloaded as exc:
            return await answer(send, 503, {"error": str(exc)}, [(b"retry-after", str(exc.retry_after_s).encode())])
        except NoModelDeployed as exc:  # raced with a config change; the gate usually answers first
            return await answer(send, 503, {"error": f"no {exc} model loaded"}, [(b"retry-after", b"2")])
        return await answer(send, 200, out)

    def close(self) -> None:
        self.lag.stop()
        for b in self.batchers.values():
            b.close()
