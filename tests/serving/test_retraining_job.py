"""retraining_job as declared: monitor → condition (N of last M windows) → run_job model_training_job."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from bundles.models import Job
from ml.monitoring import tables
from tests.serving.serving_helpers import ROOT


def test_retraining_job_wires_condition_outcome_to_the_training_job():
    doc = yaml.safe_load((ROOT / "resources" / "monitoring.yml").read_text())
    job = Job.model_validate(doc["resources"]["jobs"]["retraining_job"])
    cond = job.tasks["drift_sustained"]
    assert cond.condition.module == "ml.monitoring.retrain_condition"
    fresh = job.tasks["fresh_window"]  # the labelled production window the retrain learns from
    assert fresh.python.module == "ml.monitoring.training_window"
    [dep] = fresh.dependencies()
    assert dep.task == "drift_sustained" and dep.outcome is True
    retrain = job.tasks["retrain"]
    assert retrain.run_job.job == "model_training_job"
    assert retrain.run_job.parameters["source"] == "{{tasks.fresh_window.values.source}}"
    [dep] = retrain.dependencies()
    assert dep.task == "fresh_window"
    assert job.tasks["monitor"].python.module == "ml.monitoring.job"


def _windows(flags: list[bool], run_id: str, at: float) -> pd.DataFrame:
    return pd.DataFrame({"run_id": run_id, "computed_at": at, "env": "t", "window": range(len(flags)),
                         "n": 400, "violated": flags, "reasons": ["feature drift: amount" if f else "" for f in flags]})


@pytest.mark.parametrize("flags, expected", [
    ([False, False, False, False], False),
    ([True, False, False, True], False),   # one odd window among the last 3 is noise
    ([False, True, False, True], True),    # 2 of the last 3
])
def test_condition_task_sets_outcome(tmp_path, flags, expected):
    metric_dir = tmp_path / "metrics"
    tables.append_metrics(metric_dir, _windows([True, True, True], "old", 1.0), "windows")  # superseded run
    tables.append_metrics(metric_dir, _windows(flags, "new", 2.0), "windows")
    values = tmp_path / "values"
    values.mkdir()
    env = {**os.environ, "CONVEYOR_TASK_VALUES_DIR": str(values), "CONVEYOR_TASK": "drift_sustained"}
    proc = subprocess.run([sys.executable, "-m", "ml.monitoring.retrain_condition", "--metric-table", str(metric_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((values / "drift_sustained.json").read_text())["outcome"] is expected
    assert f"retrain: {str(expected).lower()}" in proc.stdout


def test_missing_settings_file_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ml.monitoring.retrain_condition", "--monitor-file", "nope.yml",
                           "--metric-table", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: monitor settings file not found: nope.yml"
