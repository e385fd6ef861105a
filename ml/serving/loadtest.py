"""A short closed-loop load test: `concurrency` clients sending one request after another.

Used before traffic moves (the SLA gate). Every request counts:
non-2xx answers and transport errors are errors. `run` drives the load with a compiled tool
(`wrk` or `hey`, `loadtools.py`: the same as the serving benchmark) when one is on PATH, since
Python clients in the deploying process cap the figures they measure; without one it falls
back to Python clients and says so in `LoadResult.note` (which the gate prints).
`Background` keeps requests flowing while something else happens (a canary walking its
stages, a code rollout).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    tool: str = "python"  # what drove the load
    note: str = ""  # e.g. why no compiled tool was used
    percentiles: dict[float, float] = field(default_factory=dict)  # the tool's own (ms), else from latencies_ms

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    @property
    def qps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if q in self.percentiles:
            return self.percentiles[q]
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        out = {"requests": self.requests, "errors": self.errors, "error_rate": round(self.error_rate, 4),
               "qps": round(self.qps, 1), "p50_ms": round(self.pct(50), 2), "p95_ms": round(self.pct(95), 2),
               "p99_ms": round(self.pct(99), 2), "tool": self.tool}
        return {**out, "note": self.note} if self.note else out


def run(url: str, bodies: list, *, token: str | None = None, duration_s: float = 3.0, concurrency: int = 4,
        max_requests: int | None = None, timeout_s: float = 10.0, tool: str | None = "auto") -> LoadResult:
    """POST bodies (cycled) to `url` from `concurrency` clients for `duration_s` seconds: with the
    compiled load tool `tool` ("auto": the first on PATH; None: Python clients), else Python clients
    (also for `max_requests`, which the tools do not bound)."""
    note = ""
    if tool is not None and max_requests is None:
        from ml.serving import loadtools

        try:
            found = loadtools.find(None if tool == "auto" else tool, install=False)
        except loadtools.LoadToolMissing as exc:
            note = f"no compiled load tool ({exc}); measured with Python clients, which cap throughput"
        else:
            try:
                return _with_tool(found, url, bodies, token, duration_s, concurrency)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # the tool itself failed
                note = f"{found.name} failed ({str(exc)[:200]}); measured with Python clients, which cap throughput"
    result = _python(url, bodies, token=token, duration_s=duration_s, concurrency=concurrency,
                     max_requests=max_requests, timeout_s=timeout_s)
    result.note = note
    return result


def _with_tool(tool, url: str, bodies: list, token: str | None, duration_s: float, concurrency: int) -> LoadResult:
    import json
    import tempfile
    from pathlib import Path

    from ml.serving.loadtools import Request

    texts = tuple(json.dumps(b, default=str) for b in bodies[:200])
    with tempfile.TemporaryDirectory(prefix="conveyor-loadtest-") as tmp:
        work = Path(tmp)
        (work / "body.json").write_text(texts[0])
        req = Request(url, work / "body.json", {"Authorization": f"Bearer {token}"} if token else {}, bodies=texts)
        level = tool.run(req, concurrency, duration_s, work)
    bad = {code: n for code, n in level.statuses.items() if not 200 <= code < 300}
    samples = [f"{n} non-2xx answers" if code == 0 else f"{n} answers with status {code}" for code, n in sorted(bad.items())]
    if level.transport_errors:
        samples.append(f"{level.transport_errors} transport errors (refused, reset, timed out)")
    return LoadResult(requests=level.requests, errors=level.errors, seconds=level.requests / level.rps if level.rps else
                      duration_s, error_samples=samples, tool=tool.name,
                      note="" if tool.name == "wrk" else "only the first body is sent (hey sends one body)",
                      percentiles={50: level.p50_ms, 95: level.p95_ms, 99: level.p99_ms})


def _python(url: str, bodies: list, *, token: str | None, duration_s: float, concurrency: int,
            max_requests: int | None, timeout_s: float) -> LoadResult:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    counter = {"n": 0}
    deadline = time.perf_counter() + duration_s

    def client(offset: int) -> None:
        i = offset
        with httpx.Client(timeout=timeout_s, headers=headers) as http:
            while time.perf_counter() < deadline:
                with lock:
                    if max_requests is not None and counter["n"] >= max_requests:
                        return
                    counter["n"] += 1
                body = bodies[i % len(bodies)]
                i += concurrency
                t0 = time.perf_counter()
                try:
                    resp = http.post(url, json=body)
                    ok = resp.status_code < 300
                    detail = f"{resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        latencies.append(ms)
                    else:
                        errors.append(detail)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    return LoadResult(requests=len(latencies) + len(errors), errors=len(errors), seconds=seconds,
                      latencies_ms=latencies, error_samples=errors[:5])


class Background:
    """Requests in the background until the `with` block ends: the live traffic a canary advances on.

    `send(i)` sends the i-th batch and returns how many rows were answered (added to `sent`). An
    exception `send` lets through stops the traffic and is raised again when the block ends (in
    the caller's thread, not lost with this one). `failed` is for what a `send` chooses to tolerate
    and count instead."""

    def __init__(self, send: Callable[[int], int], pause_s: float = 0.05, join_s: float = 30):
        self.send, self.pause_s, self.join_s = send, pause_s, join_s
        self.stop, self.sent, self.error = threading.Event(), 0, None
        self.failed: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.sent += self.send(i)
            except BaseException as exc:  # re-raised in the caller's thread by __exit__
                self.error = exc
                return
            i += 1
            self.stop.wait(self.pause_s)

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.stop.set()
        self.thread.join(self.join_s)
        if self.error is not None and exc_type is None:
            raise AssertionError(f"background traffic failed after {self.sent} rows: {self.error!r}") from self.error
