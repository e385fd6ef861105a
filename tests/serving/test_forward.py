"""The launcher proxy's HTTP/1.1 hop (`ml.serving.forward`) against real servers on loopback:
keep-alive reuse, chunked and sized bodies, HEAD, a backend that closed an idle connection
(retried, not failed), a backend that is not listening, and uvicorn as the real backend."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ml.serving.forward import BackendConnectError, BackendError, BackendPool
from ml.serving.launch_proxy import read_body
from tests.ports import free_port


class Scripted:
    """A loopback HTTP server answering each request with the next scripted raw answer (bytes);
    `close_after` closes the connection after that many answers on it."""

    def __init__(self, answers, close_after: int | None = None):
        self.answers, self.close_after = list(answers), close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader, writer):
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                writer.write(self.answers.pop(0))
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def _serve(script: Scripted):
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_keep_alive_sized_chunked_and_head():
    async def go():
        script = Scripted([b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello",
                           b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                           b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"])
        server, port = await _serve(script)
        pool = BackendPool("127.0.0.1", port)
        a = await pool.request("POST", b"/predict?x=1", [(b"authorization", b"Bearer t")], b'{"rows": []}')
        b = await pool.request("GET", b"/status", [], b"")
        c = await pool.request("HEAD", b"/livez", [], b"")
        pool.close()
        server.close()
        return script, a, b, c

    script, a, b, c = asyncio.run(go())
    assert (a.status, a.body, a.header(b"content-type")) == (200, b"hello", b"text/plain")
    assert (b.status, b.body) == (201, b"abcde")
    assert (c.status, c.body) == (200, b"")  # HEAD: no body despite Content-Length
    assert script.connections == 1  # one kept-alive connection for all three
    first = script.requests[0]
    assert first.startswith(b"POST /predict?x=1 HTTP/1.1\r\n") and b"authorization: Bearer t" in first
    assert first.endswith(b'content-length: 12\r\nauthorization: Bearer t\r\n\r\n{"rows": []}')


def test_a_connection_the_backend_closed_while_idle_is_retried_on_a_new_one():
    async def go():
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        script = Scripted([ok, ok], close_after=1)  # closes each connection after one answer
        server, port = await _serve(script)
        pool = BackendPool("127.0.0.1", port)
        first = await pool.request("GET", b"/a", [], b"")
        await asyncio.sleep(0.05)  # the server has closed the pooled connection by now
        second = await pool.request("GET", b"/b", [], b"")
        server.close()
        return script, first, second

    script, first, second = asyncio.run(go())
    assert first.body == second.body == b"ok"
    assert script.connections == 2


def test_no_backend_and_a_broken_answer_are_told_apart():
    async def go():
        with pytest.raises(BackendConnectError):
            await BackendPool("127.0.0.1", free_port()).request("GET", b"/", [], b"")
        script = Scripted([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"], close_after=1)
        server, port = await _serve(script)
        with pytest.raises(BackendError):  # cut short mid-body: not retried, the request had been read
            await BackendPool("127.0.0.1", port).request("POST", b"/predict", [], b"{}")
        server.close()

    asyncio.run(go())


def test_against_uvicorn():
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-echo", scope["path"].encode())]})
        await send({"type": "http.response.body", "body": body[:3], "more_body": True})  # no length: chunked
        await send({"type": "http.response.body", "body": body[3:]})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)

        async def go():
            pool = BackendPool("127.0.0.1", port)
            out = [await pool.request("POST", f"/p{i}".encode(), [], b"x" * (i * 1000)) for i in range(5)]
            pool.close()
            return out

        answers = asyncio.run(go())
        assert [a.body for a in answers] == [b"x" * (i * 1000) for i in range(5)]
        assert [a.header(b"x-echo") for a in answers] == [f"/p{i}".encode() for i in range(5)]
    finally:
        server.should_exit = True
        thread.join(10)


class ReadsThenCloses(Scripted):
    """Reads each request, then closes without answering (a worker that died mid-request)."""

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            if self.connections == 1:  # the first connection answers once, so the pool keeps it
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                writer.write(self.answers.pop(0))
                await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def test_a_post_the_backend_may_have_read_is_never_sent_twice():
    """A kept-alive connection that goes silent after the request went out: a POST fails (502),
    it may have been processed; a GET (idempotent) is sent once more on a fresh connection."""
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    async def go(method):
        script = ReadsThenCloses([ok, ok])
        server, port = await _serve(script)
        pool = BackendPool("127.0.0.1", port)
        await pool.request("GET", b"/warm", [], b"")
        try:
            return script, await pool.request(method, b"/predict", [], b"{}")
        except BackendError as exc:
            return script, exc
        finally:
            pool.close()
            server.close()

    script, out = asyncio.run(go("POST"))
    assert isinstance(out, BackendError)
    assert sum(r.startswith(b"POST /predict") for r in script.requests) == 1
    script, out = asyncio.run(go("GET"))
    assert isinstance(out, BackendError)  # the fresh connection (second) also reads and closes
    assert sum(r.startswith(b"GET /predict") for r in script.requests) == 2
    assert script.connections == 2  # retried once, not per pooled connection


def test_interim_1xx_answers_are_skipped_and_204_304_have_no_body():
    async def go():
        script = Scripted([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none",
                           b"HTTP/1.1 204 No Content\r\n\r\n",
                           b"HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\n\r\n",
                           b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntwo"])
        server, port = await _serve(script)
        pool = BackendPool("127.0.0.1", port)
        out = [await pool.request(m, p, [], b"x") for m, p in
               [("POST", b"/a"), ("DELETE", b"/b"), ("GET", b"/c"), ("GET", b"/d")]]
        pool.close()
        server.close()
        return script, out

    script, out = asyncio.run(go())
    assert [(r.status, r.body) for r in out] == [(200, b"one"), (204, b""), (304, b""), (200, b"two")]
    assert script.connections == 1  # the connection stayed in step through them all


def test_the_proxy_keeps_a_head_length_and_gives_204_304_none():
    """Through the launcher's ASGI proxy: a HEAD answers the backend's Content-Length (the GET's),
    a 204/304 carries none (uvicorn would then expect that many body bytes), a body its own length."""
    from types import SimpleNamespace

    from ml.serving.launch_proxy import Proxy

    async def go():
        script = Scripted([b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                           b"HTTP/1.1 204 No Content\r\n\r\n",
                           b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
                           b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])
        server, port = await _serve(script)
        launcher = SimpleNamespace(active=SimpleNamespace(port=port, inflight=0), env="test", code_info=dict)
        proxy, answers = Proxy(launcher), []
        for method in ("HEAD", "DELETE", "GET", "GET"):
            sent = []

            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message, sent=sent):
                sent.append(message)
            await proxy(dict(type="http", method=method, path="/x", raw_path=b"/x", query_string=b"", headers=[]),
                        receive, send)
            answers.append((sent[0]["status"], dict(sent[0]["headers"]).get(b"content-length"), sent[1]["body"]))
        for pool in proxy.pools.values():
            pool.close()
        server.close()
        return answers

    assert asyncio.run(go()) == [(200, b"5", b""), (204, None, b""), (304, None, b""), (200, b"5", b"hello")]
