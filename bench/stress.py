"""Overload benchmark: ramp single-row load on the Conveyor endpoint past saturation, then drop it.

    python -m bench.stress [--seconds 4] [--levels 4,16,64,256,1024] [--budget-ms 250] [--tool hey|wrk]

With a compiled load tool (`hey` preferred: it reports every status code), closed loop:
1. *before*: 4 connections (the baseline p99);
2. the ramp, one level per connection count; the highest 2xx rate of any level is the
   saturation QPS; the last (largest) level is *at* saturation. A probe polls `/livez` every
   100 ms (5 s timeout) through every phase and must keep answering: the gate answers it
   first, before anything else runs (`ml/serving/gate.py`);
3. *after*: the load stops; recovery time = from then until five requests in a row are
   answered 200 within 3× the baseline p50 (+10 ms); then 4 connections again.

Printed: each level's p50/p99, 2xx req/s, answers by status (503 = shed with
Retry-After, the designed answer past capacity) and its `/livez` probes, saturation QPS and the
recovery time. Figures depend on the machine and its load (the title carries the load average).
The load tools do not honour Retry-After: past saturation every connection resends at once, so
the top levels measure a storm of 503s, which a well-behaved client would not send.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench import loadtools, project, servers
from bench.loadtools import Level
from bench.serving import conveyor_request
from core import settings

console = Console(width=None if sys.stdout.isatty() else 150)
DEFAULT_LEVELS = (4, 16, 64, 256, 1024)


class LivenessProbe(threading.Thread):
    """GET /livez every 100 ms while the load runs (5 s timeout, as a liveness probe would):
    latencies and failures, cut into one segment per load level (`segment()`)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.latencies_ms, self.failures = url + "/livez", [], 0
        self._halt = threading.Event()
        self._cut = (0, 0)

    def run(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self._halt.wait(0.1):
                t0 = time.perf_counter()
                try:
                    ok = c.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                self.failures += not ok

    def segment(self) -> str:
        """The probes since the last call: `<n>, <failed> failed, p99 <ms>`."""
        n, failed = len(self.latencies_ms), self.failures
        (n0, f0), self._cut = self._cut, (n, failed)
        lat = sorted(self.latencies_ms[n0:n])
        if not lat:
            return "no probe"
        return f"{len(lat)}, {failed - f0} failed, p99 {lat[int(0.99 * (len(lat) - 1))]:.0f} ms"

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def recovery_s(req, healthy_ms: float, timeout_s: float = 60.0) -> float:
    """Seconds until five requests in a row are answered 200 within `healthy_ms`."""
    t0, streak = time.perf_counter(), 0
    body = req.body.read_bytes()
    with httpx.Client(timeout=10, headers={"Content-Type": "application/json", **req.headers}) as c:
        while time.perf_counter() - t0 < timeout_s:
            s = time.perf_counter()
            try:
                ok = c.post(req.url, content=body).status_code == 200
            except httpx.HTTPError:
                ok = False
            streak = streak + 1 if ok and (time.perf_counter() - s) * 1000 <= healthy_ms else 0
            if streak >= 5:
                return time.perf_counter() - t0
            time.sleep(0.02)
    return float("nan")


def _statuses(lv: Level) -> str:
    names = {0: "non-2xx"}
    parts = [f"{names.get(code, code)}: {n / max(lv.requests, 1):.1%}" for code, n in sorted(lv.statuses.items())]
    if lv.transport_errors:
        parts.append(f"socket errors: {lv.transport_errors / max(lv.requests, 1):.1%}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stress", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="per level (default 4)")
    ap.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)), help="connection counts of the ramp")
    loadtools.add_argument(ap, default="hey, which reports every status; else wrk")
    ap.add_argument("--budget-ms", type=int, default=250,
                    help="the endpoint's CONVEYOR_BATCH_MAX_LATENCY_MS: queueing past it is shed (default 250)")
    args = ap.parse_args(argv)
    os.environ[settings.BATCH_MAX_LATENCY_MS.name] = str(args.budget_ms)  # the endpoint started below inherits it
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    tool = loadtools.chosen(args.tool, "bench.stress", prefer="hey")
    if tool is None:
        return 2
    raw = project.transactions(300, seed=9)
    with tempfile.TemporaryDirectory(prefix="bench-stress-") as tmp:
        work = Path(tmp)
        with console.status("fitting a small model"):
            model_dir = project.save_small_model(work / "model")
        with console.status(f"Conveyor endpoint under {tool.name}"), servers.endpoint(model_dir, work) as srv:
            req = conveyor_request(srv, raw, work)
            tool.run(req, 4, min(args.seconds, 2.0), work)  # warm-up
            probe = LivenessProbe(srv.url)
            probe.start()
            before = tool.run(req, 4, args.seconds, work)
            live = {id(before): probe.segment()}
            ramp = []
            for conns in levels:
                ramp.append(tool.run(req, conns, args.seconds, work))
                live[id(ramp[-1])] = probe.segment()
            recovered = recovery_s(req, 3 * before.p50_ms + 10)
            probe.segment()  # not the recovery's probes
            after = tool.run(req, 4, args.seconds, work)
            live[id(after)] = probe.segment()
            probe.stop()
    at = ramp[-1]
    saturation = max(ramp, key=lambda lv: lv.ok_rps)
    t = Table(title=f"overload: {tool.name}, {args.seconds:g} s per level, single-row POST /predict, "
                    f"shedding budget {args.budget_ms} ms, "
                    f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for col in ("phase", "conns", "p50 ms", "p99 ms", "2xx req/s", "answers by status", "/livez probes"):
        t.add_column(col, justify="left" if col in ("phase", "answers by status", "/livez probes") else "right")
    rows = [("before", before), *((("ramp" if lv is not at else "at saturation"), lv) for lv in ramp), ("after", after)]
    for phase, lv in rows:
        t.add_row(phase, str(lv.connections), f"{lv.p50_ms:.1f}", f"{lv.p99_ms:.1f}", f"{lv.ok_rps:,.0f}", _statuses(lv),
                  live[id(lv)])
    console.print(t)
    console.print(f"saturation: {saturation.ok_rps:,.0f} req/s answered 2xx (at {saturation.connections} connections)")
    console.print(f"p99 before / at / after: {before.p99_ms:.1f} / {at.p99_ms:.1f} / {after.p99_ms:.1f} ms")
    console.print(f"/livez (GET every 100 ms, 5 s timeout) during the {at.connections}-connection level: {live[id(at)]}; "
                  f"over the whole run: {len(probe.latencies_ms)} probes, {probe.failures} failed")
    console.print(f"recovery: {recovered:.2f} s from the end of the overload to five healthy answers in a row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
