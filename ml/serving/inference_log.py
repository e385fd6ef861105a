"""The inference table: every request and response, written off the request path.

Requests put records on an in-memory queue; one writer thread takes the queue every
`flush_interval_s`, appends the records as JSON lines to a part file of this worker
(`part-<utc date>-<pid>-<start>.jsonl`) and fsyncs once per pass. `close()` drains the
queue, so a graceful shutdown or restart loses nothing; a hard kill loses at most what was
queued but not yet on disk (the last `flush_interval_s`). Readers (`read_table`) take every
part file.

A write that fails (a full disk: ENOSPC, a quota, an I/O error) never reaches the request
path and never kills the writer: the part file is cut back to its last whole line, the
records stay pending in memory (up to `max_pending` rows; beyond that the oldest are
dropped and counted in `dropped`) and are written, in order, once the disk takes them again
(retried every `retry_s`). `status()` says which state the table is in.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd

_STOP = object()
_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE
log = logging.getLogger(__name__)


class InferenceLogger:
    def __init__(self, table_dir: Path | None, flush_interval_s: float = 0.2, *, retry_s: float = 1.0,
                 max_pending: int = 200_000):
        self.table_dir = Path(table_dir) if table_dir else None
        self.flush_interval_s, self.retry_s, self.max_pending = flush_interval_s, retry_s, max_pending
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = threading.Event()  # set by close(): the writer drains without waiting out its interval
        self._written = 0
        self._pending: collections.deque[bytes] = collections.deque()  # json lines not on disk yet, oldest first
        self.dropped = 0  # rows given up on: pending past `max_pending` while the disk refused them
        self.last_error: str | None = None  # set while writes fail, None once they succeed again
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        self._started = f"{int(time.time() * 1000)}"
        if self.table_dir is not None:
            self.table_dir.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
            self._thread.start()

    @property
    def written(self) -> int:
        return self._written

    def status(self) -> dict:
        """Rows written, pending (not on disk yet), dropped, and the failing write's error if any."""
        return {"written": self._written, "pending": len(self._pending), "dropped": self.dropped,
                "error": self.last_error}

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
            # One pass per interval, not one per request: waking on every enqueue cost each request
            # a GIL hand-off to this thread and an fsync; close() wakes it at once.
            self._closing.wait(self.flush_interval_s)
            batch: list[dict] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    batch.extend(item)
            try:
                if batch:
                    self._hold(batch)
                if self._pending and (stop or time.monotonic() >= self._retry_at):
                    self._flush()
            except Exception:  # a bug here must not end the table for the rest of the worker's life
                log.exception("inference table writer")

    def _hold(self, batch: list[dict]) -> None:
        # orjson: a few µs a record where json.dumps took tens, and this thread shares the GIL with
        # the request path; times stay str(datetime) as before (passthrough → default=str)
        self._pending.extend(orjson.dumps(r, default=str, option=_ORJSON) for r in batch)
        while len(self._pending) > self.max_pending:
            self._pending.popleft()
            self.dropped += 1

    def _flush(self) -> None:
        data, rows = b"".join(self._pending), len(self._pending)
        try:
            _append(self._path(), data)
        except OSError as exc:
            if self.last_error is None:
                log.warning("inference table %s: write failed (%s); %d rows kept pending, retried every %.1f s",
                            self.table_dir, exc, rows, self.retry_s)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._retry_at = time.monotonic() + self.retry_s
            return
        if self.last_error is not None:
            log.warning("inference table %s: writing again (%d pending rows written)", self.table_dir, rows)
        self.last_error = None
        self._pending.clear()
        self._written += rows

    def close(self, timeout: float = 30.0) -> None:
        """Drain everything queued so far (one last try for what the disk refused), then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._closing.set()
        self._thread.join(timeout)
        self._thread = None
        if self._pending:
            log.error("inference table %s: %d rows could not be written (%s)", self.table_dir,
                      len(self._pending), self.last_error)


def _append(path: Path, data: bytes) -> None:
    """Append whole lines and fsync; on failure cut the file back, so a reader never sees half a line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


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
        data = part.read_bytes()
        data = data[:data.rfind(b"\n") + 1]  # a line the writer is appending right now is no record yet
        if not data:
            continue
        frame = pd.read_json(io.BytesIO(data), lines=True, dtype=False, convert_dates=False)
        if since is not None:
            if not len(frame) or "timestamp" not in frame.columns:
                continue
            frame = frame[frame["timestamp"].astype(float) >= since]
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
