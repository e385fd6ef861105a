"""Where a `/predict` request's time goes: py-spy on the Conveyor endpoint under load.

    python -m bench.serving_profile [--connections 1,64] [--seconds 10] [--idle] [--launcher] [--model DIR]

Starts the endpoint as `bench.serving` does (token, schema, inference table on), drives it
with the load tool at each connection count while py-spy samples every process of
`bentoml serve` (with `--launcher`: the env's launcher and its backend, as users reach the
endpoint), and prints per level the top frames by own time (where the CPU is) and by
inclusive time (under what). `--idle` also counts threads that wait (the batcher's window,
locks, sockets): on-CPU alone hides time a request spends waiting. The raw stacks are kept in
bench/results/profiles/serving-<n>conn.txt (open them in speedscope or flamegraph.pl).
Needs py-spy: `pip install py-spy`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import loadtools, project, pyspy, servers
from bench.serving import conveyor_request

PROFILES = Path(__file__).resolve().parent / "results" / "profiles"
console = Console(width=None if sys.stdout.isatty() else 160)


def profile_level(tool, req, server: servers.Server, connections: int, seconds: float, idle: bool, work: Path,
                  suffix: str = ""):
    """Load at `connections` while py-spy records; returns the level and the stacks."""
    out = PROFILES / f"serving-{connections}conn{suffix}{'-idle' if idle else ''}.txt"
    result: dict = {}
    load = threading.Thread(target=lambda: result.setdefault("level", tool.run(req, connections, seconds + 2, work)))
    load.start()
    spy = pyspy.record_pid(server.pid, out, seconds, idle=idle)
    _, err = spy.communicate()
    load.join()
    if not out.exists():
        raise RuntimeError(f"py-spy wrote no profile: {err[-1500:]}")
    return result["level"], pyspy.read(out), out


def frames_table(title: str, stacks: list[pyspy.Stack], n: int) -> Table:
    own, under = pyspy.top_frames(stacks, n)
    t = Table(title=title)
    for col in ("own time", "frame", "inclusive", "frame "):
        t.add_column(col, justify="right" if col in ("own time", "inclusive") else "left", overflow="fold")
    for i in range(max(len(own), len(under))):
        a = own[i] if i < len(own) else ("", 0)
        b = under[i] if i < len(under) else ("", 0)
        t.add_row(f"{a[1]:.1%}" if a[0] else "", a[0], f"{b[1]:.1%}" if b[0] else "", b[0])
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serving_profile", description=__doc__.splitlines()[0])
    ap.add_argument("--connections", default="1,64", help="comma-separated load levels (default 1,64)")
    ap.add_argument("--seconds", type=float, default=10.0, help="sampling time per level")
    ap.add_argument("--idle", action="store_true", help="count waiting threads too (wall-clock profile)")
    ap.add_argument("--top", type=int, default=20, help="frames per table")
    ap.add_argument("--launcher", action="store_true", help="profile the launcher path (proxy + backend)")
    ap.add_argument("--model", help="MLflow model directory (default: fit a small one)")
    loadtools.add_argument(ap)
    args = ap.parse_args(argv)
    if pyspy.executable() is None:
        print(f"bench.serving_profile: py-spy not found: {pyspy.INSTALL_HINT}", file=sys.stderr)
        return 2
    tool = loadtools.chosen(args.tool, "bench.serving_profile")
    if tool is None:
        return 2
    PROFILES.mkdir(parents=True, exist_ok=True)
    raw = project.transactions(300, seed=9)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        model_dir = Path(args.model) if args.model else project.save_small_model(work / "model")
        serve = servers.launcher if args.launcher else servers.endpoint
        with serve(model_dir, work) as server:
            req = conveyor_request(server, raw, work)
            tool.run(req, 4, 2.0, work)  # warm-up
            for c in (int(x) for x in args.connections.split(",")):
                level, stacks, path = profile_level(tool, req, server, c, args.seconds, args.idle, work,
                                                    "-launcher" if args.launcher else "")
                kind = "wall-clock" if args.idle else "on-CPU"
                console.print(frames_table(f"{kind} profile, {c} connection(s): p50 {level.p50_ms:.1f} ms, "
                                           f"p99 {level.p99_ms:.1f} ms, {level.rps:.0f} req/s — {path}", stacks, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
