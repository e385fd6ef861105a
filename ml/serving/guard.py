"""Live health of a canary challenger: a sliding window of outcomes and latencies."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from ml.serving.endpoint_config import CanaryGuard


class LiveGuard:
    def __init__(self, bounds: CanaryGuard, window: int = 200):
        self.bounds = bounds
        self._outcomes: deque[tuple[bool, float]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, ok: bool, latency_ms: float, n: int = 1) -> str | None:
        """Record `n` rows' outcome; return the reason if a bound is crossed, else None."""
        with self._lock:
            self._outcomes.extend([(ok, latency_ms)] * n)
            total = len(self._outcomes)
            if total < self.bounds.min_requests:
                return None
            errors = sum(1 for good, _ in self._outcomes if not good)
            rate = errors / total
            if rate > self.bounds.max_error_rate:
                return f"challenger error rate {rate:.1%} > {self.bounds.max_error_rate:.1%} over {total} requests"
            latencies = [lat for good, lat in self._outcomes if good]
            if latencies:
                p95 = float(np.percentile(latencies, 95))
                if p95 > self.bounds.max_p95_ms:
                    return f"challenger p95 latency {p95:.0f} ms > {self.bounds.max_p95_ms:.0f} ms over {total} requests"
            return None
