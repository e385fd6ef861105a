"""Batching the rows of concurrent requests, without making a lone caller wait, and shedding load.

One `Batcher` per endpoint and target (traffic / candidate), on the event loop of the worker:

- a request that finds the batcher idle is scored at once — there is no batching window, so
  light traffic (even right after a burst) never waits for company;
- requests that arrive while a batch is being scored queue up, and the next batch takes all
  of them (up to `max_batch_rows` rows): under load, batches grow by themselves;
- scoring runs on one thread (`engine.score` is CPU-bound, and the worker has few cores), so
  the event loop keeps parsing, validating and answering meanwhile — `/livez` included. The
  exception is a lone small request while scoring is cheap (recent batches took under
  `INLINE_MAX_MS`): it is scored on the event loop itself, since handing it to the thread and
  back costs two GIL hand-offs — more than scoring one row. "Lone" is decided after the batcher
  yields to the loop once, so requests already parsed and waiting on the loop join the batch:
  at `submit` every request looks alone under load (the loop runs each handler up to `submit`
  without yielding), and deciding there would score them one by one, never batched or shed;
- past capacity a request is refused at once with `Overloaded` (503 + Retry-After) instead of
  queueing into a timeout: when the queued work it would wait behind is predicted (from the
  measured cost of recent batches) to exceed `budget_ms`, or when more than `max_pending`
  requests already wait, or when the event loop itself runs more than the budget late while
  many requests are in flight (`LoopLag`: parsing, not scoring, is the bottleneck). A request that waited past the budget
  anyway is shed when its batch starts. The queue therefore stays short, and the endpoint
  recovers as soon as load drops. Shedding is checked before a body is validated, so a shed
  request costs little.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ml.serving.errors import Overloaded

MAX_BATCH_ROWS = 256
INLINE_MAX_ROWS = 8  # a lone request of up to this many rows may be scored on the event loop …
INLINE_MAX_MS = 4.0  # … while the recent batches took less than this


@dataclass
class _Item:
    rows: list[dict]
    future: asyncio.Future
    queued_at: float


class Batcher:
    def __init__(self, score: Callable[[list[dict]], list[dict]], *, budget_ms: float = 1000.0,
                 max_batch_rows: int = MAX_BATCH_ROWS, max_pending: int = 512, name: str = "score"):
        self._score = score
        self.budget_ms = float(budget_ms)
        self.max_batch_rows = max_batch_rows
        self.max_pending = max_pending
        self._pending: deque[_Item] = deque()
        self._pending_rows = 0
        self._running = False
        self._batch_ms = 5.0  # moving averages: one batch's scoring time,
        self._fixed_ms = 5.0  # … its fixed part (from batches of one or two rows),
        self._row_ms = 0.05  # … and its cost per row (from larger ones)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.shed = 0

    def _predicted_wait_ms(self, rows: int) -> float:
        """How long a new request would wait: the batch running now plus the batches queued before it."""
        queued = self._pending_rows + rows
        batches = math.ceil(queued / self.max_batch_rows)
        return self._batch_ms + batches * self._fixed_ms + queued * self._row_ms

    def saturated(self) -> bool:
        """True when a new request would be shed: checked before its body is validated, so a shed
        request costs the event loop as little as possible."""
        return self._running and (len(self._pending) >= self.max_pending or self._predicted_wait_ms(1) > self.budget_ms)

    async def submit(self, rows: list[dict]) -> list[dict]:
        """The answers for `rows`, scored with whatever else is waiting; `Overloaded` when past capacity."""
        if self._running and (len(self._pending) >= self.max_pending
                              or self._predicted_wait_ms(len(rows)) > self.budget_ms):
            self.shed += 1
            raise Overloaded(f"the endpoint is overloaded: about {self._predicted_wait_ms(len(rows)):.0f} ms of "
                             f"queued scoring > its {self.budget_ms:.0f} ms budget; retry after a second")
        loop = asyncio.get_running_loop()
        item = _Item(rows, loop.create_future(), time.monotonic())
        self._pending.append(item)
        self._pending_rows += len(rows)
        if not self._running:
            self._running = True
            loop.create_task(self._drain(loop))
        return await item.future

    def _take(self) -> list[_Item]:
        """The next batch: the oldest waiting requests up to `max_batch_rows` rows (at least one request);
        those that already waited past the budget are shed instead."""
        batch, rows, now = [], 0, time.monotonic()
        while self._pending and (not batch or rows + len(self._pending[0].rows) <= self.max_batch_rows):
            item = self._pending.popleft()
            self._pending_rows -= len(item.rows)
            if (now - item.queued_at) * 1000 > self.budget_ms:
                self.shed += 1
                if not item.future.done():
                    item.future.set_exception(Overloaded(
                        f"the endpoint is overloaded: waited over its {self.budget_ms:.0f} ms budget; retry"))
                continue
            batch.append(item)
            rows += len(item.rows)
        return batch

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            # one turn of the loop first: requests already read and parsed run up to `submit` and
            # join this batch, so only a request that is really alone is scored inline below
            await asyncio.sleep(0)
            first = True  # only the batch found after that turn may be scored inline; later ones met a busy batcher
            while self._pending:
                batch = self._take()
                if not batch:
                    continue
                flat = [row for item in batch for row in item.rows]
                inline = first and len(batch) == 1 and len(flat) <= INLINE_MAX_ROWS and self._batch_ms < INLINE_MAX_MS
                first = False
                t0 = time.perf_counter()
                try:
                    if inline:  # requests arriving meanwhile queue for the next batch
                        out = self._score(flat)
                    else:
                        out = await loop.run_in_executor(self._executor, self._score, flat)
                except Exception as exc:  # each caller gets the error of its batch
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                self._learn((time.perf_counter() - t0) * 1000, len(flat))
                start = 0
                for item in batch:
                    if not item.future.done():  # the caller may have gone away
                        item.future.set_result(out[start:start + len(item.rows)])
                    start += len(item.rows)
        finally:
            self._running = False

    def _learn(self, ms: float, rows: int) -> None:
        self._batch_ms = 0.8 * self._batch_ms + 0.2 * ms
        if rows <= 2:
            self._fixed_ms = 0.8 * self._fixed_ms + 0.2 * ms
        elif rows >= 8:
            self._row_ms = 0.8 * self._row_ms + 0.2 * max(0.0, ms - self._fixed_ms) / rows

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class LoopLag:
    """How late the event loop runs a timer: the time a request waits before any code of ours sees it.

    When HTTP parsing and validation (not scoring) are the bottleneck, the batcher's queue stays
    short while requests wait in the loop; shedding on the loop's lag keeps those fast too."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.lag_ms = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Safe from any thread (an endpoint is removed by the bindings watcher)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # its loop is already closed
                pass

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            late = (time.perf_counter() - t0 - self.interval_s) * 1000
            # rises at once, decays over a few ticks: a burst is seen immediately, recovery in ~0.2 s
            self.lag_ms = late if late > self.lag_ms else 0.7 * self.lag_ms + 0.3 * late
