"""`make bench`: every benchmark in its quick mode, one table each.

    python -m bench [--full]

`--full` runs the training benchmark at 100k/1M/5M rows (tens of minutes) and serving
at 8 s per load level; the default (training at 20k rows, serving at 3 s per level)
takes about 5 minutes on 2 cores.
Each benchmark is also runnable alone: `python -m bench.bundles|training|serving|stress`.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from bench import bundles, serving, stress, training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="training at 100k, 1M and 5M rows, serving 8 s per level (long)")
    args = parser.parse_args(argv)
    console = Console()
    runs = [
        ("bundle engine", bundles.main, []),
        ("training job and batch scoring", training.main, [] if args.full else ["--quick"]),
        ("serving", serving.main, ["--seconds", "8" if args.full else "3"]),
        ("serving past saturation", stress.main, ["--seconds", "4" if args.full else "2"]),
    ]
    failed = []
    for title, run, run_args in runs:
        console.rule(f"[bold]{title}")
        if run(run_args) != 0:
            failed.append(title)
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
