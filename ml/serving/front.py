"""The launcher's public HTTP/1.1 server: a lean front for one ASGI app that reads bodies whole.

The launcher's proxy (`launch_proxy.Proxy`) only needs a request as a whole (method, target,
headers, body) and gives its answer as a whole; uvicorn's general machinery around it (a task
and flow control per request, a proxy-headers middleware, header validation in Python, the
answer's head and body as two socket writes) cost ~0.28 ms of CPU per request — as much again
as the hop itself, on the 2 cores the endpoint's worker needs. This server parses requests with
httptools (C, as uvicorn does), calls the app once per request, and writes each answer with one
`write`.

Contract (what clients see, as with uvicorn before):
- HTTP/1.1 keep-alive (and HTTP/1.0's), `Connection: close` honoured, requests of a pipelining
  client answered in order; an idle kept-alive connection is closed after `KEEP_ALIVE_S`;
- `Expect: 100-continue` is answered with `100 Continue` at once (the body is read whole anyway);
- a malformed request → 400 and the connection closes (an `Upgrade` request is answered as plain
  HTTP/1.1, then the connection closes); a body over `max_body`
  bytes → 413 and the connection closes; the app raising before it answered → 500;
- the app gets an ASGI `http` scope (`path` decoded, `raw_path`, `query_string`, lower-case header
  names) and a `receive` that returns the whole body in one message; an answer without
  `Content-Length` is sent chunked (HEAD, 204 and 304 never carry a body);
- SIGTERM/SIGINT: stop accepting, close idle connections, let requests in flight answer for up
  to `grace_s`, then close the rest; the app's lifespan startup / shutdown run around it all.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import signal
import time
from collections import deque
from http import HTTPStatus
from urllib.parse import unquote

import httptools

log = logging.getLogger("conveyor.front")
KEEP_ALIVE_S = 5.0  # uvicorn's default: an idle kept-alive client connection is closed after this
MAX_BODY = 64 * 1024 * 1024 + 65536  # the largest body an endpoint may accept (sla.max_body_bytes) + slack
MAX_PIPELINED = 32  # complete requests queued on one connection before it stops reading
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_date: list = [0, b""]


def _date_header() -> bytes:
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, email.utils.formatdate(now, usegmt=True).encode()
    return _date[1]


def _simple(status: int, text: str) -> bytes:
    body = text.encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS.get(status, b""), len(body))) + body


class _State:
    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body
        self.connections: set[_Connection] = set()
        self.stopping = False


class _Connection(asyncio.Protocol):
    """One client connection: parse, call the app per request (one at a time, in order), answer."""

    def __init__(self, state: _State):
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.queue: deque = deque()
        self.busy = False
        self.closed = False
        self.disconnected: asyncio.Future | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.failed: bytes | None = None  # the answer to an unparsable request behind the one in flight
        self._url = b""
        self._headers: list = []
        self._body: list = []
        self._size = 0
        self.client = self.server = None

    # ---- the transport ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.client = transport.get_extra_info("peername")
        self.server = transport.get_extra_info("sockname")
        self.state.connections.add(self)
        self._idle()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self._cancel_idle()
        if self.disconnected is not None and not self.disconnected.done():
            self.disconnected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._cancel_idle()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # e.g. `Upgrade: h2c`: answered as plain HTTP/1.1, as uvicorn does,
            if self.busy or self.queue:      # then closed (the parser cannot go on after an upgrade)
                self.failed = b""
                self.transport.pause_reading()
            else:
                self._fail(400, "upgrades are not supported here")
        except httptools.HttpParserError as exc:  # also what a callback raised (the body limit)
            if self._size > self.state.max_body:
                self._fail(413, f"request body over {self.state.max_body} bytes")
            else:
                self._fail(400, f"malformed HTTP request: {exc}")

    def _fail(self, status: int, text: str) -> None:
        """Answer a request that cannot be parsed (nothing else will be read on this connection)."""
        if self.closed:
            return
        if self.busy or self.queue:  # answer the requests before it first, then this, then close
            self.failed = _simple(status, text)
            self.transport.pause_reading()
            return
        self.transport.write(_simple(status, text))
        self.transport.close()

    def _idle(self) -> None:
        self.idle_timer = self.loop.call_later(KEEP_ALIVE_S, self._close_idle)

    def _cancel_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _close_idle(self) -> None:
        if not self.busy and not self.queue and not self.closed:
            self.transport.close()

    def shutdown(self) -> None:
        """Server stopping: an idle connection closes now, a busy one after its answer."""
        if not self.busy and not self.queue and not self.closed:
            self.transport.close()

    # ---- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", [], [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name == b"expect" and value.lower() == b"100-continue":
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.state.max_body:
            raise ValueError("request body too large")  # httptools stops parsing; data_received answers 413
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.queue.append((p.get_method().decode("ascii"), self._url, self._headers, body, p.should_keep_alive(),
                           p.get_http_version()))
        if len(self.queue) >= MAX_PIPELINED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    # ---- one request -----------------------------------------------------------------------
    def _next(self) -> None:
        self.busy = True
        self.loop.create_task(self._handle(*self.queue.popleft()))

    async def _handle(self, method, url, headers, body, keep_alive, version) -> None:
        parsed = httptools.parse_url(url)
        raw_path = parsed.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": version,
                 "server": self.server, "client": self.client, "scheme": "http", "method": method, "root_path": "",
                 "path": path, "raw_path": raw_path, "query_string": parsed.query or b"", "headers": headers}
        answer = _Answer(self, method, keep_alive and not self.state.stopping)
        sent_body = [False]

        async def receive():
            if not sent_body[0]:
                sent_body[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            if self.disconnected is None:
                self.disconnected = self.loop.create_future()
                if self.closed:
                    self.disconnected.set_result(None)
            await self.disconnected
            return {"type": "http.disconnect"}

        try:
            await self.state.app(scope, receive, answer.send)
        except Exception:
            log.exception("the proxy failed on %s %s", method, path)
            if not answer.started and not self.closed:
                answer.keep_alive = False
                self.transport.write(_simple(500, "internal error in the endpoint's proxy"))
                answer.done = True
        if not answer.done:
            answer.keep_alive = False  # an answer cut short: the client cannot tell where it ends
        self._after(answer.keep_alive)

    def _after(self, keep_alive: bool) -> None:
        self.busy = False
        if self.closed:
            return
        if self.failed is not None and not self.queue:
            self.transport.write(self.failed)
            keep_alive = False
        if not keep_alive or self.state.stopping and not self.queue:
            self.transport.close()
            return
        if self.queue:
            self._next()
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self._idle()


class _Answer:
    """The ASGI `send` of one request: the head and a whole body go out in one write."""

    __slots__ = ("conn", "method", "keep_alive", "started", "done", "head", "chunked", "no_body")

    def __init__(self, conn: _Connection, method: str, keep_alive: bool):
        self.conn, self.method, self.keep_alive = conn, method, keep_alive
        self.started = self.done = self.chunked = self.no_body = False
        self.head = b""

    async def send(self, message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the response was already started")
            self.started = True
            status = message["status"]
            lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b""))]
            length = dated = False
            for name, value in message.get("headers") or ():
                low = name.lower()
                if low == b"content-length":
                    length = True
                elif low == b"date":
                    dated = True
                elif low == b"connection" and b"close" in value.lower():
                    self.keep_alive = False
                    continue
                elif low == b"transfer-encoding":
                    continue  # this server frames the body itself
                lines.append(name + b": " + value)
            if not dated:
                lines.append(b"date: " + _date_header())
            no_body = self.method == "HEAD" or status in (204, 304) or 100 <= status < 200
            if not length and not no_body:
                self.chunked = True
                lines.append(b"transfer-encoding: chunked")
            if not self.keep_alive:
                lines.append(b"connection: close")
            self.head = b"\r\n".join(lines) + b"\r\n\r\n"
            self.no_body = no_body
        elif kind == "http.response.body":
            if not self.started or self.done:
                raise RuntimeError("response body without a started response, or after its end")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.no_body:
                body = b""
            if self.chunked:
                body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (b"" if more else b"0\r\n\r\n")
            out = self.head + body if self.head else body
            self.head = b""
            if out and not self.conn.closed:
                self.conn.transport.write(out)
            if not more:
                self.done = True


async def serve(app, host: str, port: int, *, grace_s: float = 5.0, backlog: int = 2048, max_body: int = MAX_BODY,
                stop: asyncio.Event | None = None, started: asyncio.Event | None = None) -> None:
    """Serve `app` on host:port until SIGTERM/SIGINT (or `stop` is set), then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (RuntimeError, ValueError):  # not the main thread (tests run it in one)
            pass
    lifespan = _Lifespan(app)
    await lifespan.startup()
    state = _State(app, max_body)
    server = await loop.create_server(lambda: _Connection(state), host, port, backlog=backlog, reuse_address=True)
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        state.stopping = True
        server.close()
        for conn in list(state.connections):
            conn.shutdown()
        deadline = loop.time() + grace_s
        while any(c.busy for c in state.connections) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(state.connections):
            conn.transport.close()
        await lifespan.shutdown()


def run(app, host: str, port: int, **kwargs) -> None:
    """`serve` on uvloop when it is installed (it is a dependency of the project), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(app, host, port, **kwargs))
        return
    uvloop.run(serve(app, host, port, **kwargs))


class _Lifespan:
    """The ASGI lifespan protocol around the server's life (the proxy closes its pools at shutdown)."""

    def __init__(self, app):
        self.app = app
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        await self._reply()

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self._reply()

    async def _reply(self) -> None:
        getter = asyncio.ensure_future(self.outbox.get())
        done, _ = await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()  # the app returned (or failed) without answering: it does not do lifespan
