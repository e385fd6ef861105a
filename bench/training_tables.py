"""The training benchmark's tables, from the per-size result dicts `bench.training.one_size` returns."""

from __future__ import annotations

from rich.table import Table

from bench.targets import Target, ratio

PEAK_RSS_MB_MAX = 2.5 * 1024


def job_table(results: list[dict], tasks: list[str]) -> Table:
    threads = sorted({r.get("threads") for r in results if r.get("threads")})
    shown = f"; {', '.join(map(str, threads))} OpenMP thread(s) in tasks and floor alike" if threads else ""
    t = Table(title="Training job (" + " → ".join(tasks) + "), its floor, and batch scoring" + shown)
    cols = ["rows", *(f"{k} s" for k in tasks), "job wall s", "job CPU s", "floor s", "bare fit s", "peak RSS MB",
            "scored rows", "batch job rows/s", "raw predict_proba rows/s", "load avg"]
    for col in cols:
        t.add_column(col, justify="right")
    for r in results:
        cpu = f"{sum(r['cpu'].values()):.1f}" if r.get("cpu") else "—"  # results of older runs have none
        load = f"{r['load_avg']:.1f}" if "load_avg" in r else "—"
        t.add_row(f"{r['rows']:,}", *(f"{r['tasks'][k]:.1f}" for k in tasks), f"{r['job_s']:.1f}", cpu,
                  f"{r['floor_s']:.1f}", f"{r['bare_fit_s']:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r['score_rows']:,}",
                  f"{r['batch_job_rows_s']:,}", f"{r['raw_predict_rows_s']:,}", load)
    return t


def split_table(results: list[dict], tasks: list[str], buckets: list[str]) -> Table:
    """Seconds of each task's wall time per bucket (py-spy samples of its main threads)."""
    t = Table(title="Where each task's time goes (s, from py-spy wall-clock samples)")
    for col in ("rows", "task", "wall s", *buckets):
        t.add_column(col, justify="left" if col == "task" else "right")
    for r in results:
        for k in tasks:
            parts = r["split"].get(k) or {}
            cells = [f"{parts[b]:.1f}" if b in parts else "—" for b in buckets]
            t.add_row(f"{r['rows']:,}" if k == tasks[0] else "", k, f"{r['tasks'][k]:.1f}", *cells)
        t.add_section()
    return t


def targets(results: list[dict]) -> list[Target]:
    """The training bounds, each at every size it can be read at (they are stated for 5M / 1M rows)."""
    out = []
    for r in results:
        n = f"{r['rows']:,} rows"
        out.append(Target(f"{n}: job wall ÷ in-process floor", ratio(r["job_s"], r["floor_s"]), 2.5))
        out.append(Target(f"{n}: peak RSS", r["peak_rss_mb"], PEAK_RSS_MB_MAX, unit=" MB"))
        out.append(Target(f"{r['score_rows']:,} scored rows: batch job ÷ raw predict_proba rows/s",
                          ratio(r["batch_job_rows_s"], r["raw_predict_rows_s"]), 0.9, at_most=False))
    ordered = sorted(results, key=lambda r: r["rows"])
    for small, big in zip(ordered, ordered[1:]):
        growth = big["rows"] / small["rows"]
        out.append(Target(f"job wall {big['rows']:,} ÷ {small['rows']:,} rows (rows ×{growth:g})",
                          ratio(big["job_s"], small["job_s"]), growth))
    return out


def target_table(results: list[dict]) -> Table:
    t = Table(title="Targets")
    for col in ("", "measured", "target", "verdict"):
        t.add_column(col, justify="left" if not col else "right")
    for tg in targets(results):
        t.add_row(tg.what, tg.measured(), tg.bound(), tg.verdict())
    return t
