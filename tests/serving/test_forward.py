"""The launcher proxy's HTTP/1.1 hop (`ml.serving.forward`) against real servers on loopback:
keep-alive reuse, chunked and sized bodies, HEAD, a backend that closed an idle connection
(retried, not failed), a backend that is not listening, and uvicorn as the real backend."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ml.serving.forward import BackendConnectError, BackendError, BackendPool
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
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
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
