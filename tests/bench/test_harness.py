"""The benchmark harness reads its tools' output right: load-tool summaries, py-spy stacks, targets."""

from __future__ import annotations

import math

from bench.loadtools import Hey, Wrk
from bench.pyspy import read, top_frames
from bench.targets import Target
from bench.training_split import classify, split

HEY = """
Summary:
  Requests/sec:\t295.0120

Latency distribution:
  10% in 0.0037 secs
  50% in 0.0064 secs
  99% in 0.0134 secs

Status code distribution:
  [200]\t290 responses
  [503]\t6 responses

Error distribution:
  [3]\tPost "http://127.0.0.1:1/predict": dial tcp: connection refused
"""

WRK = """
  Latency Distribution
     50%  635.91us
     75%  712.00us
     90%    2.00ms
     99%    1.03s
  939 requests in 1.00s, 509.12KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    935.93
"""


def test_hey_counts_non_2xx_and_transport_errors():
    level = Hey().parse(HEY, 4)
    assert (level.p50_ms, level.p99_ms, level.rps) == (6.4, 13.4, 295.012)
    assert (level.requests, level.errors) == (299, 9)


def test_hey_without_enough_samples_for_p99_says_so():
    assert math.isnan(Hey().parse(HEY.replace("  99% in 0.0134 secs\n", ""), 1).p99_ms)


def test_wrk_units_and_errors():
    level = Wrk().parse(WRK, 64)
    assert math.isclose(level.p50_ms, 0.63591) and math.isclose(level.p99_ms, 1030.0)
    assert (level.requests, level.errors, level.rps) == (939, 7, 935.93)


def test_wrk_p95_comes_from_the_script_and_hey_from_its_table():
    assert math.isclose(Wrk().parse(WRK + "p95_us: 2500\n", 4).p95_ms, 2.5)
    assert math.isnan(Wrk().parse(WRK, 4).p95_ms)
    assert math.isclose(Hey().parse(HEY.replace("  99% in", "  95% in 0.0101 secs\n  99% in"), 4).p95_ms, 10.1)


def test_wrk_cycles_bodies_and_prints_p95(tmp_path):
    from bench.loadtools import Request

    body = tmp_path / "b.json"
    body.write_text('{"rows": []}')
    cmd = Wrk().command(Request("http://127.0.0.1:1/predict", body, {"Authorization": "Bearer t"},
                                bodies=('{"a": 1}', '{"a": 2}')), 4, 2, tmp_path)
    script = (tmp_path / "wrk-post.lua").read_text()
    assert cmd[-1] == "http://127.0.0.1:1/predict" and "-c4" in cmd
    assert '[=[{"a": 1}]=], [=[{"a": 2}]=]' in script and "request = function()" in script
    assert "latency:percentile(95)" in script and 'wrk.headers["Authorization"] = [=[Bearer t]=]' in script


def test_training_split_buckets_main_threads_and_skips_waiting_parents(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join([
        'process 1:"python -m ml.training.train";<module> (ml/training/train.py:1);_find_and_load (<frozen importlib._bootstrap>:1) 30',
        'process 1:"python -m ml.training.train";main (ml/training/train.py:9);Pipeline.fit (sklearn/pipeline.py:4) 60',
        'process 1:"python -m ml.training.train";Thread._bootstrap (threading.py:1);run (mlflow/utils/async_logging.py:3) 500',
        'process 1:"python -m ml.data.ingest";run (subprocess.py:1);Popen.communicate (subprocess.py:2) 400',
        'process 1:"python -m ml.data.ingest";process 2:"dvc repro";repro (dvc/repo/reproduce.py:5) 10',
    ]))
    stacks = read(raw)
    assert [classify(s) for s in stacks] == ["imports", "fit", None, None, "DVC"]
    seconds = split(stacks, wall_s=10.0)
    assert (seconds["imports"], seconds["fit"], seconds["DVC"]) == (3.0, 6.0, 1.0)
    own, under = top_frames(stacks, 1)
    assert own == [("run (mlflow/utils/async_logging.py)", 0.5)]
    assert under == [("run (mlflow/utils/async_logging.py)", 0.5)]  # thread roots are left out


def test_targets_bound_both_ways():
    assert Target("p50 ratio", 0.5, 0.75).ok and not Target("p50 ratio", 0.8, 0.75).ok
    assert Target("req/s ratio", 12, 10, at_most=False).ok and not Target("nan", math.nan, 1).ok


def test_levels_keep_answers_by_status_for_the_stress_table():
    from bench.stress import _statuses

    hey = Hey().parse(HEY, 4)
    assert hey.statuses == {200: 290, 503: 6} and hey.transport_errors == 3
    assert math.isclose(hey.ok_rps, 295.012 * 290 / 299)
    assert _statuses(hey) == "200: 97.0%, 503: 2.0%, socket errors: 1.0%"
    wrk = Wrk().parse(WRK, 64)
    assert wrk.statuses == {200: 932, 0: 4} and wrk.transport_errors == 3
