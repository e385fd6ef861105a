"""The launcher's public port: an ASGI proxy that sends every request to the active backend.

Each request is read whole, sent to the backend that is active when it arrives (counted in
its `inflight`, so the launcher drains a backend only once its requests have answered), and
answered whole. Clients' connections end at this proxy, never at a backend, so handing over to
new code closes none of them. `GET /status` (and `/<endpoint>/status`) gain the launcher's `code`.
Before any backend runs it answers itself (health 200, else 401 without a valid token, 503).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

from core import settings
from ml.serving.tokens import OPEN_PATHS, TokenSet, bearer

if TYPE_CHECKING:
    from ml.serving.launcher import Backend, Launcher

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"host", b"content-length",
              b"proxy-connection", b"te", b"trailer"}


class Proxy:
    """The ASGI app on the public port: every request goes to the active backend."""

    def __init__(self, launcher: Launcher):
        self.launcher = launcher
        self.client: httpx.AsyncClient | None = None
        self.tokens = TokenSet(settings.SERVING_TOKENS_FILE.get())

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=512,
                                                                                     max_keepalive_connections=64))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await self.client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        for attempt in (1, 2):
            backend = self.launcher.active
            if backend is None:
                return await self._without_backend(scope, send)
            backend.inflight += 1
            try:
                resp = await self._forward(backend, scope, body)
                break
            except httpx.ConnectError:
                if attempt == 2 or self.launcher.active is backend:  # no other backend to try
                    return await _json(send, 503, {"error": f"the {self.launcher.env} endpoint is restarting; retry"},
                                       [(b"retry-after", b"1")])
            except httpx.HTTPError as exc:
                return await _json(send, 502, {"error": f"the endpoint's server failed: {type(exc).__name__}"})
            finally:
                backend.inflight -= 1
        content = resp.content
        if scope["path"].endswith("/status") and scope["method"] == "GET" and resp.status_code == 200:
            try:
                content = json.dumps({**resp.json(), "code": self.launcher.code_info()}).encode()
            except ValueError:
                pass
        headers = [(k, v) for k, v in resp.headers.raw if k.lower() not in HOP_BY_HOP and k.lower() != b"content-encoding"]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": resp.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _forward(self, backend: Backend, scope, body: bytes) -> httpx.Response:
        path = scope.get("raw_path") or scope["path"].encode()
        url = backend.url + path.decode("latin-1") + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in HOP_BY_HOP]
        return await self.client.request(scope["method"], url, headers=headers, content=body)

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
