"""`/livez` is answered by the gate itself, first: no token, and nothing behind it runs (the
BentoML app, its routing, metrics and tracing middleware), so it stays cheap when the worker is
flooded. (Under real overload: `python -m bench.stress` probes it during its top level.)"""

from __future__ import annotations

import asyncio
import json

from ml.serving.gate import GateMiddleware


def _call(gate, path: str, method: str = "GET") -> tuple[int, dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(gate({"type": "http", "path": path, "method": method, "headers": []}, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_livez_is_answered_before_anything_behind_the_gate(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_SERVING_TOKENS_FILE", str(tmp_path / "tokens.json"))
    reached = []

    async def app(scope, receive, send):  # BentoML's app: must not be reached for /livez
        reached.append(scope["path"])

    def no_engine():
        raise AssertionError("/livez must not need the engine")

    gate = GateMiddleware(app, engine_factory=no_engine, endpoints_factory=no_engine)
    assert _call(gate, "/livez") == (200, {"status": "alive"})
    assert _call(gate, "/livez", "HEAD")[0] == 200
    assert reached == []
    asyncio.run(gate({"type": "http", "path": "/readyz", "method": "GET", "headers": []}, None, None))
    assert reached == ["/readyz"]  # readiness is still BentoML's (it asks the service)
