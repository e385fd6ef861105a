"""The launcher's public port: an ASGI proxy that sends every request to the active backend.

Each request is read whole, sent to the backend that is active when it arrives (counted in
its `inflight`, so the launcher drains a backend only once its requests have answered), and
answered whole. The hop is a pool of kept-alive raw HTTP/1.1 connections per backend
(`forward.py`): it costs far less than scoring a row. Clients' connections end at this proxy, never at a backend, so handing over to
new code closes none of them. `GET /status` (and `/<endpoint>/status`) gain the launcher's `code`.
Before any backend runs it answers itself (health 200, else 401 without a valid token, 503).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from core import settings
from ml.serving.forward import NO_BODY_STATUSES, BackendConnectError, BackendError, BackendPool
from ml.serving.tokens import OPEN_PATHS, TokenSet, bearer

if TYPE_CHECKING:
    from ml.serving.launcher import Backend, Launcher

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"host", b"content-length",
              b"proxy-connection", b"te", b"trailer",
              b"expect"}  # the proxy has read the whole body: a forwarded 100-continue would only cost a round trip
MAX_IDLE = 128  # kept-alive connections per backend: one per concurrent request, up to this many


async def read_body(receive) -> bytes:
    """An ASGI request's whole body (the proxy forwards requests whole)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class Proxy:
    """The ASGI app on the public port: every request goes to the active backend."""

    def __init__(self, launcher: Launcher):
        self.launcher = launcher
        self.pools: dict[int, BackendPool] = {}  # backend port -> its kept-alive connections
        self.tokens = TokenSet(settings.SERVING_TOKENS_FILE.get())

    def _pool(self, backend: Backend) -> BackendPool:
        pool = self.pools.get(backend.port)
        if pool is None:
            active = self.launcher.active
            for port in [p for p in self.pools if active is None or p != active.port]:
                self.pools.pop(port).close()  # a drained backend's connections (idle ones only: they are not in use)
            pool = self.pools[backend.port] = BackendPool("127.0.0.1", backend.port, max_idle=MAX_IDLE)
        return pool

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    for pool in self.pools.values():
                        pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        for attempt in (1, 2):
            backend = self.launcher.active
            if backend is None:
                return await self._without_backend(scope, send)
            backend.inflight += 1
            try:
                resp = await self._forward(backend, scope, body)
                break
            except BackendConnectError:
                if attempt == 2 or self.launcher.active is backend:  # no other backend to try
                    return await _json(send, 503, {"error": f"the {self.launcher.env} endpoint is restarting; retry"},
                                       [(b"retry-after", b"1")])
            except (BackendError, TimeoutError) as exc:
                return await _json(send, 502, {"error": f"the endpoint's server failed: {type(exc).__name__}"})
            finally:
                backend.inflight -= 1
        content = resp.body
        if scope["path"].endswith("/status") and scope["method"] == "GET" and resp.status == 200:
            try:
                content = json.dumps({**json.loads(content), "code": self.launcher.code_info()}).encode()
            except ValueError:
                pass
        headers = [(k, v) for k, v in resp.headers if k not in HOP_BY_HOP]
        if resp.status in NO_BODY_STATUSES:
            pass  # 204/304: no body and no length (the server would want a body of that length)
        elif scope["method"] == "HEAD":  # no body: its Content-Length is the GET's (the backend's)
            headers += [(k, v) for k, v in resp.headers if k == b"content-length"]
        else:
            headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _forward(self, backend: Backend, scope, body: bytes):
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in HOP_BY_HOP]
        return await self._pool(backend).request(scope["method"], target, headers, body)

    async def _without_backend(self, scope, send):
        """No code deployed yet (or the first one is still starting): answer what can be answered."""
        path, method = scope["path"], scope["method"]
        if method in ("GET", "HEAD") and path in OPEN_PATHS:
            return await _json(send, 200, {"status": "no serving code deployed yet"})
        if not self.tokens.allows(bearer(scope)):  # the gate's tokens and open paths
            return await _json(send, 401, {"error": "missing or invalid serving token for this environment"},
                               [(b"www-authenticate", b"Bearer")])
        if method == "GET" and path == "/status":
            return await _json(send, 200, {"env": self.launcher.env, "models": {}, "code": self.launcher.code_info()})
        starting = self.launcher.rolling
        msg = (f"the {self.launcher.env} endpoint is starting code {starting.short}; retry shortly" if starting else
               f"no serving code is deployed to the {self.launcher.env} env yet: `conveyor bundle deploy` ships it")
        return await _json(send, 503, {"error": msg}, [(b"retry-after", b"2")])


async def _json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
