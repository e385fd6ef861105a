"""Keeping the cyclic garbage collector's full passes off the request path of a serving process.

A worker holds a large, long-lived heap: BentoML, pandas, scikit-learn, MLflow and the loaded
models — about 270k tracked objects. CPython's full (generation-2) collection walks all of
them, and requests keep promoting short-lived objects (rows, records waiting for the inference
table's writer), so under load a full pass ran every few seconds and stopped the worker for
~100 ms idle, 300–600 ms on a busy host: every request in flight waited for it, and those were
the 64-connection p99 (bench/serving.py; docs/serving.md, "Where the tail came from").

`settle()` moves everything alive now into the permanent generation (`gc.freeze()`), which
later passes do not walk: a full pass then costs what the objects created since cost. It is
called once the models of a config revision are loaded (`engine.py`) and once the launcher's
proxy has a backend (`launcher.py`). Frozen objects are still freed by reference counting (a
replaced model's arrays, frames and estimators go when the last request using them ends); only
garbage in reference cycles among them stays, which is why each call collects first (everything
the first time, the young generations after).
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_collected = False


def settle() -> None:
    """Freeze the heap as it is now, after collecting its garbage (all of it the first time in this
    process, the young generations only later)."""
    global _collected
    with _lock:
        # a full pass once, at start-up (before traffic); later calls happen while serving, where
        # a full pass is exactly the pause this module exists to avoid: the young generations only
        gc.collect(2 if not _collected else 1)
        _collected = True
        gc.freeze()
