"""The inference table: every request and response, written off the request path.

Requests put records on an in-memory queue; one writer thread appends them as JSON
lines to a part file of this worker (`part-<utc date>-<pid>-<start>.jsonl`) and
flushes+fsyncs each batch. `close()` drains the queue, so a graceful shutdown or
restart loses nothing. Readers (`read_table`) take every part file.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

_STOP = object()


class InferenceLogger:
    def __init__(self, table_dir: Path | None, flush_interval_s: float = 0.2):
        self.table_dir = Path(table_dir) if table_dir else None
        self.flush_interval_s = flush_interval_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._written = 0
        self._thread: threading.Thread | None = None
        self._started = f"{int(time.time() * 1000)}"
        if self.table_dir is not None:
            self.table_dir.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
            self._thread.start()

    @property
    def written(self) -> int:
        return self._written

    def log(self, records: list[dict]) -> None:
        """Cheap: enqueue only. Safe from any thread."""
        if self._thread is not None and records:
            self._queue.put(records)

    def _path(self) -> Path:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        return self.table_dir / f"part-{day}-{os.getpid()}-{self._started}.jsonl"

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[dict] = []
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batch.extend(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _write(self, batch: list[dict]) -> None:
        data = "".join(json.dumps(r, default=str) + "\n" for r in batch)
        with open(self._path(), "a") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._written += len(batch)

    def close(self, timeout: float = 30.0) -> None:
        """Drain everything queued so far, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None


def read_table(table_dir: Path, since: float | None = None) -> pd.DataFrame:
    """The records of an inference table as one frame (empty frame if none); with `since`, only
    those logged at or after it (part files last written before then are not read)."""
    table_dir = Path(table_dir)
    frames = []
    for part in sorted(table_dir.glob("part-*.jsonl")) if table_dir.is_dir() else []:
        try:
            stat = part.stat()
        except FileNotFoundError:
            continue
        if stat.st_size == 0 or (since is not None and stat.st_mtime < since - 1):
            continue
        frame = pd.read_json(part, lines=True, dtype=False, convert_dates=False)
        if since is not None:
            if not len(frame) or "timestamp" not in frame.columns:
                continue
            frame = frame[frame["timestamp"].astype(float) >= since]
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
