"""The SLA gate's load test (`ml.serving.loadtest.run`) drives a real loopback server with the
compiled tool when one is on PATH (every body in turn, non-2xx counted, p50/p95/p99 from the
tool), and with Python clients otherwise, saying so in its figures."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from ml.serving import loadtest
from tests.ports import free_port
from ml.serving.launch_proxy import read_body


@pytest.fixture(scope="module")
def server():
    import uvicorn

    seen: list[bytes] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        seen.append(body)
        authorised = (b"authorization", b"Bearer tok") in scope["headers"]
        status = 401 if not authorised else 503 if b'"i": 3' in body or b'"i":3' in body else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/predict", seen
    srv.should_exit = True
    thread.join(10)


BODIES = [{"rows": [{"i": i}]} for i in range(5)]  # one in five answers 503


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_with_wrk_every_body_is_sent_and_errors_counted(server):
    url, seen = server
    seen.clear()
    result = loadtest.run(url, BODIES, token="tok", duration_s=1.0, concurrency=2, tool="wrk")
    assert result.tool == "wrk" and not result.note
    assert result.requests > 50 and len(set(seen)) == 5
    assert 0.1 < result.error_rate < 0.3 and result.error_samples == [f"{result.errors} non-2xx answers"]
    figures = result.summary()
    assert figures["tool"] == "wrk" and figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]


def test_without_a_tool_python_clients_measure_and_the_figures_say_so(server, monkeypatch):
    url, _ = server
    monkeypatch.setenv("PATH", "/nonexistent")
    refused = [{"rows": [{"i": 3}]}]  # every answer is a 503
    result = loadtest.run(url, refused, token="tok", duration_s=2.0, concurrency=2)
    assert result.tool == "python" and "no compiled load tool" in result.summary()["note"]
    assert result.requests > 0 and result.errors == result.requests and "503" in result.error_samples[0]
    assert loadtest.run(url, BODIES, token="tok", duration_s=0.3, concurrency=1, tool=None).note == ""
