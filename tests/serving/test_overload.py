"""The batcher: a lone request never waits, concurrent ones share a batch, past capacity it sheds
at once with `Overloaded` (503 + Retry-After at the route) and recovers as soon as load drops.

In-process with a scoring function of known cost; the figures under real load are the stress
benchmark's (`python -m bench.stress`), not a timed test.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ml.serving.batcher import Batcher
from ml.serving.errors import Overloaded


def _scorer(ms_per_batch: float):
    batches: list[int] = []

    def score(rows):
        batches.append(len(rows))
        time.sleep(ms_per_batch / 1000)
        return [{"i": r["i"]} for r in rows]

    return score, batches


def test_a_lone_request_is_scored_at_once_and_concurrent_ones_share_batches():
    score, batches = _scorer(20)
    b = Batcher(score, budget_ms=1000)

    async def run():
        t0 = time.perf_counter()
        assert await b.submit([{"i": 0}]) == [{"i": 0}]
        alone_ms = (time.perf_counter() - t0) * 1000
        answers = await asyncio.gather(*(b.submit([{"i": i}]) for i in range(30)))
        return alone_ms, answers

    alone_ms, answers = asyncio.run(run())
    assert alone_ms < 20 + 200  # the scoring time plus scheduling, no batching window
    assert [a[0]["i"] for a in answers] == list(range(30))  # each caller gets its own rows back, in order
    assert batches[0] == 1 and len(batches) < 1 + 30  # the 30 concurrent requests shared batches
    b.close()


def test_past_capacity_requests_are_shed_at_once_and_it_recovers():
    score, _ = _scorer(50)
    b = Batcher(score, budget_ms=200, max_batch_rows=4)

    async def burst(n):
        async def one(i):
            t0 = time.perf_counter()
            try:
                await b.submit([{"i": i}])
                return "ok", time.perf_counter() - t0
            except Overloaded as exc:
                assert "overloaded" in str(exc) and exc.retry_after_s >= 1
                return "shed", time.perf_counter() - t0
        return await asyncio.gather(*(one(i) for i in range(n)))

    async def run():
        first = await burst(60)  # 60 requests at once: 15 batches of 4 = 750 ms of work for a 200 ms budget
        await asyncio.sleep(0.1)
        after = await burst(2)  # load gone: answered again
        return first, after

    first, after = asyncio.run(run())
    shed = [t for what, t in first if what == "shed"]
    served = [t for what, t in first if what == "ok"]
    assert shed and served
    assert max(shed) < 0.5  # refused quickly (not after a timeout)
    assert max(served) < 0.2 + 0.2  # what was accepted met (about) the budget
    assert [what for what, _ in after] == ["ok", "ok"]
    b.close()


def test_a_scoring_error_reaches_only_the_callers_of_that_batch():
    calls = {"n": 0}

    def score(rows):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("boom")
        return rows

    b = Batcher(score)

    async def run():
        with pytest.raises(ValueError, match="boom"):
            await b.submit([{"i": 1}])
        return await b.submit([{"i": 2}])

    assert asyncio.run(run()) == [{"i": 2}]
    b.close()


def test_a_late_event_loop_is_seen_and_forgotten_once_it_catches_up():
    from ml.serving.batcher import LoopLag

    async def run():
        lag = LoopLag(interval_s=0.02)
        lag.start()
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # the loop is blocked, as when parsing requests is the bottleneck
        await asyncio.sleep(0.03)
        seen = lag.lag_ms
        await asyncio.sleep(0.5)
        lag.stop()
        return seen, lag.lag_ms

    seen, later = asyncio.run(run())
    assert seen > 200 and later < seen / 2  # decays once the loop keeps time again


def test_a_lone_cheap_request_is_scored_on_the_event_loop_and_a_slow_one_is_not():
    import threading

    threads: list[str] = []

    def score(rows):
        threads.append(threading.current_thread().name)
        time.sleep(rows[0]["ms"] / 1000)
        return rows

    b = Batcher(score, name="scorer")

    async def run(ms: float, n: int):
        for _ in range(n):
            await b.submit([{"ms": ms}])

    asyncio.run(run(0.1, 12))  # cheap: after a few batches on the thread it runs inline
    assert threads[0].startswith("scorer") and threads[-1] == "MainThread"
    threads.clear()
    asyncio.run(run(30, 8))  # slow: learnt from the inline calls, back on the scoring thread
    assert threads[-1].startswith("scorer")
    b.close()


def test_cheap_requests_that_arrive_together_share_a_batch_instead_of_each_being_scored_inline():
    # Under load the event loop runs each request's handler to `submit` without yielding, so every
    # one of them looks alone there: deciding "inline" at that point never batched and never shed.
    score, batches = _scorer(0.1)
    b = Batcher(score, budget_ms=1000)

    async def run():
        for i in range(12):  # cheap and alone: learnt to score inline
            await b.submit([{"i": i}])
        batches.clear()
        return await asyncio.gather(*(b.submit([{"i": i}]) for i in range(40)))

    answers = asyncio.run(run())
    assert [a[0]["i"] for a in answers] == list(range(40))
    assert len(batches) <= 3 and max(batches) >= 20  # one or two batches, not 40 single rows
    b.close()
