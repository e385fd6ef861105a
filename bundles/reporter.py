"""Progress of one run for whoever follows it: a live table on a terminal, lines otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

from bundles.runs import RunRecord, TaskState


class Reporter:
    """Progress per task: a live table on a terminal, one line per change otherwise."""

    def __init__(self, console=None, title: str = ""):
        from rich.console import Console

        self.console = console or Console()
        self.title = title
        self.live = None
        self.record: RunRecord | None = None
        self._shown: dict[str, str] = {}

    def _table(self):
        from rich.table import Table

        table = Table(title=self.title, expand=False)
        for col in ("task", "status", "attempt", "time", "note"):
            table.add_column(col)
        colors = {"success": "green", "failed": "red", "running": "yellow", "skipped": "dim", "excluded": "dim"}
        for name, ts in (self.record.tasks.items() if self.record else []):
            secs = f"{ts.duration_s:.1f}s" if ts.duration_s is not None else ""
            if ts.status == "running" and ts.started:
                secs = f"{(datetime.now(UTC) - datetime.fromisoformat(ts.started)).total_seconds():.0f}s"
            table.add_row(name, f"[{colors.get(ts.status, '')}]{ts.status}[/]", str(ts.attempts or ""), secs, ts.reason)
        return table

    def start(self, record: RunRecord) -> None:
        self.record = record
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            self.console.print(f"run {record.run_id} of job {record.job} in env {record.env} ({len(record.tasks)} tasks)")

    def task(self, name: str, ts: TaskState) -> None:
        if self.live:
            self.live.update(self._table())
        elif ts.status != "pending" and self._shown.get(name) != ts.status:
            self._shown[name] = ts.status
            note = f" ({ts.reason})" if ts.reason else ""
            took = f" in {ts.duration_s:.1f}s" if ts.duration_s is not None and ts.status != "running" else ""
            self.console.print(f"  {name}: {ts.status}{took}{note}", highlight=False)

    def tick(self) -> None:
        if self.live:
            self.live.update(self._table())

    def stop(self) -> None:
        if self.live:
            self.live.update(self._table())
            self.live.stop()
