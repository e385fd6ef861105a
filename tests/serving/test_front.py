"""The launcher's public HTTP/1.1 server (`ml.serving.front`) on a real loopback socket: keep-alive,
`Connection: close`, pipelined requests answered in order, chunked request bodies read whole,
`Expect: 100-continue`, HEAD/204 without a body, an answer without a length sent chunked, bad
requests → 400, a body over the limit → 413, and a graceful stop that lets a request in flight answer."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from ml.serving import front
from ml.serving.launch_proxy import read_body
from tests.ports import free_port


SLOW_STARTED = threading.Event()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await read_body(receive)
    path = scope["path"]
    if path == "/slow":
        SLOW_STARTED.set()
        await asyncio.sleep(0.5)
    if path == "/nolength":  # no Content-Length: the server frames it (chunked)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-path", path.encode())]})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})
        return
    if path == "/boom":
        raise RuntimeError("broken app")
    status = 204 if path == "/empty" else 200
    out = b"" if status == 204 else b"%s %s (%s) %s q=%s" % (scope["method"].encode(), scope["raw_path"],
                                                             path.encode(), body, scope["query_string"])
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(out)).encode())] if status != 204 else []})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def server():
    port = free_port()
    state: dict = {}

    def run():
        async def main():
            state["loop"], state["stop"], state["started"] = asyncio.get_running_loop(), asyncio.Event(), asyncio.Event()
            await front.serve(app, "127.0.0.1", port, grace_s=3.0, max_body=10_000, stop=state["stop"],
                              started=state["started"])
        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (state.get("started") and state["started"].is_set()) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield {"url": f"http://127.0.0.1:{port}", "port": port, "state": state, "thread": thread}
    if not state["stop"].is_set():
        state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(10)


def _raw(port: int, data: bytes, until: bytes = b"", timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        got = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
            if until and got.count(until[:12]) and got.endswith(until):
                break
        return got


def test_keep_alive_query_and_body(server):
    with httpx.Client(base_url=server["url"]) as http:
        a = http.post("/p%20q?x=1", content=b"hello")
        b = http.get("/second")
    assert a.status_code == 200 and a.text == "POST /p%20q (/p q) hello q=x=1"
    assert b.text == "GET /second (/second)  q="
    assert a.headers["date"]
    # pipelined on one connection: answered in order; the last asks to close, and the server does
    out = _raw(server["port"], b"GET /one HTTP/1.1\r\nhost: x\r\n\r\nGET /two HTTP/1.1\r\nhost: x\r\n"
                               b"connection: close\r\n\r\n")
    assert out.index(b"GET /one") < out.index(b"GET /two")
    assert out.count(b"HTTP/1.1 200 OK") == 2 and b"connection: close" in out


def test_chunked_request_expect_continue_head_204_and_chunked_answer(server):
    out = _raw(server["port"], b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert out.endswith(b"POST /c (/c) abcde q=")
    out = _raw(server["port"], b"POST /e HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n"
                               b"connection: close\r\n\r\nhi")
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") and out.endswith(b"POST /e (/e) hi q=")
    with httpx.Client(base_url=server["url"]) as http:
        head = http.head("/h")
        empty = http.post("/empty")
        nolength = http.get("/nolength")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(b"HEAD /h (/h)  q="))
    assert empty.status_code == 204 and empty.content == b""
    assert nolength.text == "abcd" and nolength.headers["transfer-encoding"] == "chunked"


def test_bad_requests_are_answered_not_dropped(server):
    assert _raw(server["port"], b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    # an upgrade it does not speak (curl --http2 on http://) is answered as HTTP/1.1, then closed
    h2c = _raw(server["port"], b"GET /u HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n"
                               b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    assert h2c.startswith(b"HTTP/1.1 200 OK") and h2c.endswith(b"GET /u (/u)  q=")
    big = _raw(server["port"], b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 20000\r\n\r\n" + b"x" * 20000)
    assert big.startswith(b"HTTP/1.1 413")
    with httpx.Client(base_url=server["url"]) as http:
        boom = http.get("/boom")
        assert boom.status_code == 500
        assert http.get("/after").status_code == 200  # the server goes on


def test_stop_lets_the_request_in_flight_answer(server):
    result = {}

    def slow():
        result["resp"] = httpx.get(server["url"] + "/slow", timeout=10)

    caller = threading.Thread(target=slow)
    caller.start()
    assert SLOW_STARTED.wait(10)  # the request is in flight
    server["state"]["loop"].call_soon_threadsafe(server["state"]["stop"].set)
    caller.join(10)
    server["thread"].join(10)
    assert result["resp"].status_code == 200 and result["resp"].text.startswith("GET /slow")
    assert not server["thread"].is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server["url"] + "/late", timeout=2)
