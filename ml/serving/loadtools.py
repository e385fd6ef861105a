"""Compiled HTTP load generators (`hey`, `wrk`): one closed-loop level at a time.

A Python client in the measuring process caps what it can see (the GIL and the client's own
latency end up in the figures), so the serving benchmark (`bench/`) and the SLA gate of
`update_endpoint` (`loadtest.py`) drive load with a compiled tool from the Debian packages.
`find()` returns the first one on PATH, installs `hey` with apt-get when running as root and
allowed to, and otherwise raises `LoadToolMissing` saying what to install.

Adding a tool: subclass `LoadTool` (its `command` and `parse`), append it to `TOOLS`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConveyorError


class LoadToolMissing(ConveyorError, RuntimeError):
    """No load tool on PATH and none could be installed."""


@dataclass(frozen=True)
class Level:
    """One load level as the tool saw it. Latencies in ms; errors = transport errors + non-2xx."""

    connections: int
    p50_ms: float
    p99_ms: float
    rps: float
    requests: int
    errors: int
    statuses: dict[int, int] = field(default_factory=dict)  # answers by HTTP status (hey; wrk: 200 vs other)
    transport_errors: int = 0
    p95_ms: float = float("nan")

    @property
    def ok_rps(self) -> float:
        """Requests per second answered with 2xx."""
        return self.rps * (self.requests - self.errors) / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Request:
    """What the requests of a level carry: `body` each time, or (wrk) `bodies` in turn."""

    url: str
    body: Path
    headers: dict[str, str]
    bodies: tuple[str, ...] = ()


class LoadTool:
    name = ""
    package = ""  # Debian package that provides `name`

    def available(self) -> bool:
        return shutil.which(self.name) is not None

    def command(self, req: Request, connections: int, seconds: float, workdir: Path) -> list[str]:
        raise NotImplementedError

    def parse(self, out: str, connections: int) -> Level:
        raise NotImplementedError

    def run(self, req: Request, connections: int, seconds: float, workdir: Path) -> Level:
        cmd = self.command(req, connections, seconds, workdir)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-1500:]}")
        return self.parse(proc.stdout, connections)


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


class Hey(LoadTool):
    name, package = "hey", "hey"

    def command(self, req, connections, seconds, workdir):
        cmd = ["hey", "-z", f"{seconds:g}s", "-c", str(connections), "-m", "POST", "-T", "application/json",
               "-D", str(req.body), "-t", "30"]
        for key, value in req.headers.items():
            cmd += ["-H", f"{key}: {value}"]
        return [*cmd, req.url]

    def parse(self, out, connections):
        pct = {int(p): float(s) * 1000 for p, s in re.findall(r"^\s*(\d+)% in ([\d.]+) secs", out, re.M)}
        rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
        statuses = {int(c): int(n) for c, n in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", out, re.M)}
        errors_block = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
        transport = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", errors_block, re.M))
        non_2xx = sum(n for code, n in statuses.items() if not 200 <= code < 300)
        nan = float("nan")
        return Level(connections, pct.get(50, nan), pct.get(99, nan), rps,
                     requests=sum(statuses.values()) + transport, errors=non_2xx + transport, statuses=statuses,
                     transport_errors=transport, p95_ms=pct.get(95, nan))


class Wrk(LoadTool):
    name, package = "wrk", "wrk"

    def command(self, req, connections, seconds, workdir):
        script = workdir / "wrk-post.lua"
        lines = ['wrk.method = "POST"', f"wrk.body = [=[{req.body.read_text()}]=]",
                 'wrk.headers["Content-Type"] = "application/json"']
        lines += [f'wrk.headers["{k}"] = [=[{v}]=]' for k, v in req.headers.items()]
        if req.bodies:  # each connection cycles through them
            lines += ["local bodies = {" + ", ".join(f"[=[{b}]=]" for b in req.bodies) + "}", "local i = 0",
                      "request = function()", "  i = i % #bodies + 1",
                      "  return wrk.format(nil, nil, nil, bodies[i])", "end"]
        # p95 is not in --latency's table: printed by the script, in microseconds
        lines += ["done = function(summary, latency, requests)",
                  '  io.write(string.format("p95_us: %d\\n", latency:percentile(95)))', "end"]
        script.write_text("\n".join(lines) + "\n")
        threads = max(1, min(connections, os.cpu_count() or 1))
        return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                "--latency", "-s", str(script), req.url]

    def parse(self, out, connections):
        pct = {int(p): _seconds(v, u) * 1000 for p, v, u in re.findall(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
        rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        transport = sum(map(int, sockets.groups())) if sockets else 0
        other = int(non_2xx.group(1)) if non_2xx else 0
        nan = float("nan")
        p95 = re.search(r"^p95_us: (\d+)", out, re.M)
        return Level(connections, pct.get(50, nan), pct.get(99, nan), rps, requests=requests, errors=other + transport,
                     statuses={200: requests - other - transport, **({0: other} if other else {})},
                     transport_errors=transport, p95_ms=int(p95.group(1)) / 1000 if p95 else nan)


# wrk first: its percentiles are exact at any sample count (hey leaves out a p99 it has too few samples for)
TOOLS: tuple[LoadTool, ...] = (Wrk(), Hey())


def find(prefer: str | None = None, install: bool = True) -> LoadTool:
    """The load tool to use: `prefer` if named, else the first of TOOLS on PATH; installs one if it can."""
    tools = [t for t in TOOLS if prefer in (None, t.name)]
    if not tools:
        raise LoadToolMissing(f"unknown load tool {prefer!r}; known: {', '.join(t.name for t in TOOLS)}")
    for tool in tools:
        if tool.available():
            return tool
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        tool = tools[0]
        for attempt in (["apt-get", "install", "-y", "-q", tool.package], ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", tool.package]):
            if subprocess.run(attempt, capture_output=True, text=True).returncode == 0 and tool.available():
                return tool
    names = " or ".join(t.package for t in tools)
    raise LoadToolMissing(f"serving benchmark needs a compiled load tool: install {names} "
                          f"(Debian/Ubuntu: `sudo apt-get install -y {tools[0].package}`) and run it again")
