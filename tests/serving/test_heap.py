"""What keeps a serving worker's pauses short: the loaded model out of the full GC passes' reach,
and the inference table written once per interval yet drained at once on shutdown."""

from __future__ import annotations

import gc

from ml.serving.inference_log import InferenceLogger, read_table


def test_a_loaded_model_is_not_walked_by_full_collections(tmp_path, models):
    """A full pass over a worker's whole heap stopped every request in flight for 100-600 ms
    (the 64-connection p99 of issue #16); after loading, the model must sit in the frozen heap."""
    from ml.serving.endpoint_config import promote, update_config
    from ml.serving.engine import Engine
    from tests.serving.serving_helpers import served

    cfg_dir = tmp_path / "cfg"
    update_config(cfg_dir, lambda c: promote(c, served(models["v1"], "1")), by="test", reason="test")
    engine = Engine(cfg_dir, tmp_path / "table", env="test", poll_s=60)
    try:
        assert engine.refresh() or engine.snapshot.get("champion") is not None
        estimator = engine.snapshot.get("champion").model
        assert gc.get_freeze_count() > 0
        assert not any(o is estimator for o in gc.get_objects(generation=2))
    finally:
        engine.close()
        gc.unfreeze()  # the rest of the test session collects as usual


def test_close_writes_everything_logged_without_waiting_out_the_interval(tmp_path):
    """The writer takes the queue once per interval; a shutdown must not lose (or wait for) the last one.
    With a 10-minute interval, a close() that waited for it would give up (its 60 s timeout) with
    the rows not written."""
    logger = InferenceLogger(tmp_path / "table", flush_interval_s=600)
    logger.log([{"request_id": f"r{i}", "prediction": i % 2} for i in range(3)])
    logger.log([{"request_id": "r3", "prediction": 1}])
    logger.close(timeout=60)
    table = read_table(tmp_path / "table")
    assert sorted(table["request_id"]) == ["r0", "r1", "r2", "r3"]
    assert logger.written == 4
