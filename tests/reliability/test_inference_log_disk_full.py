"""The inference table on a disk that fills up (a real ENOSPC: a tiny tmpfs, see disk.py):
the writer keeps running, no half line reaches the table, and once space returns every row
logged meanwhile is written, in order."""

from __future__ import annotations

import time

import pytest

from ml.serving.inference_log import InferenceLogger, read_table
from tests.reliability.disk import can_mount, full_disk

pytestmark = pytest.mark.skipif(not can_mount(), reason="needs root to mount a tmpfs (a real full disk)")


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _rows(start: int, n: int) -> list[dict]:
    return [{"request_id": f"r{i}", "timestamp": time.time(), "payload": "x" * 200} for i in range(start, start + n)]


def test_a_full_disk_holds_rows_back_and_writes_them_when_space_returns(tmp_path):
    table = tmp_path / "inference"
    with full_disk(table, size="64k") as disk:
        logger = InferenceLogger(table, retry_s=0.2)
        for k in range(20):
            logger.log(_rows(k * 10, 10))
        _wait(lambda: logger.status()["error"] is not None)
        assert "No space left on device" in logger.status()["error"]
        assert logger.status()["pending"] == 200 and logger.written == 0
        assert read_table(table).empty  # nothing half-written: the part file was cut back

        disk.free()
        logger.log(_rows(200, 5))
        _wait(lambda: logger.written == 205)
        assert logger.status() == {"written": 205, "pending": 0, "dropped": 0, "error": None}
        logger.close()
        ids = list(read_table(table)["request_id"])
    assert ids == [f"r{i}" for i in range(205)]  # all of them, in order, after the mount is gone too


def test_past_its_bound_the_oldest_pending_rows_are_dropped_and_counted(tmp_path):
    table = tmp_path / "inference"
    with full_disk(table, size="64k") as disk:
        logger = InferenceLogger(table, retry_s=0.2, max_pending=50)
        for k in range(10):
            logger.log(_rows(k * 10, 10))
        _wait(lambda: logger.status()["dropped"] == 50)
        disk.free()
        _wait(lambda: logger.written == 50)
        logger.close()
        assert list(read_table(table)["request_id"]) == [f"r{i}" for i in range(50, 100)]
