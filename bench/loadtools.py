"""The compiled load tools of the serving benchmarks (`ml.serving.loadtools`, shared with the SLA
gate of `update_endpoint`) and the `--tool` option every load benchmark takes."""

from __future__ import annotations

import sys

from ml.serving.loadtools import TOOLS, Hey, LoadTool, LoadToolMissing, Level, Request, Wrk, find

__all__ = ["TOOLS", "Hey", "Level", "LoadTool", "LoadToolMissing", "Request", "Wrk", "add_argument", "chosen", "find"]


def add_argument(ap, default: str = "first found") -> None:
    """The `--tool` option every load benchmark takes."""
    ap.add_argument("--tool", choices=[t.name for t in TOOLS], default=None, help=f"load tool (default: {default})")


def chosen(name: str | None, prog: str, prefer: str | None = None) -> LoadTool | None:
    """The tool named on the command line; unnamed, `prefer` when it can be had, else the first
    found (`find`). None, after one line on stderr saying what to install, when there is none."""
    try:
        if name is None and prefer is not None:
            try:
                return find(prefer)
            except LoadToolMissing:
                pass
        return find(name)
    except LoadToolMissing as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
