"""The task wrapper (`ml.task.run_task`): user errors are one line, bugs keep their traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ml import task
from ml.config import ConfigError
from ml.data.versioning import DataVersionError
from tests.ml.harness import PROJECT


@pytest.fixture
def failed_runs(monkeypatch) -> list[str]:
    """Calls of the 'mark the MLflow run failed' hook, instead of a tracking server."""
    calls: list[str] = []
    monkeypatch.setattr(task, "_fail_active_run", lambda: calls.append("FAILED"))
    return calls


def _raise(exc: BaseException):
    def body():
        raise exc

    return body


@pytest.mark.parametrize("exc", [
    task.TaskError("no data version: run `ingest` first or pass --data-version"),
    ConfigError("params.yaml: train.threshold: Input should be less than 1"),
    DataVersionError("data version 00 is not in the DVC remote /tmp/remote"),
])
def test_user_error_is_one_line_exit_1_and_fails_the_run(exc, capsys, failed_runs):
    assert task.run_task("train", _raise(exc)) == 1
    assert capsys.readouterr().err == f"train: error: {exc}\n"
    assert failed_runs == ["FAILED"]


def test_failed_check_is_worded_as_a_verdict(capsys, failed_runs):
    code = task.run_task("validate_model", _raise(task.CheckFailed("models:/m/2 refused — min_roc_auc: 0.61 >= 0.8")))
    assert code == 1
    assert capsys.readouterr().err == "validate_model: FAILED: models:/m/2 refused — min_roc_auc: 0.61 >= 0.8\n"
    assert failed_runs == ["FAILED"]


def test_a_bug_propagates_and_still_fails_the_run(failed_runs):
    with pytest.raises(ZeroDivisionError):
        task.run_task("train", lambda: 1 / 0)
    with pytest.raises(KeyError):  # a KeyError is a bug now, not a hidden one-liner
        task.run_task("train", lambda: {}["model_uri"])
    assert failed_runs == ["FAILED", "FAILED"]


def test_a_bug_keeps_its_traceback_in_a_real_task_process():
    code = "from ml import task\nraise SystemExit(task.run_task('train', lambda: 1 / 0))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert "train: error:" not in proc.stderr


def test_ctrl_c_exits_130(capsys, failed_runs):
    assert task.run_task("ingest", _raise(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "ingest: error: interrupted\n"
    assert failed_runs == ["FAILED"]


def test_success_returns_the_body_code(failed_runs):
    assert task.run_task("ingest", lambda: None) == 0
    assert task.run_task("ingest", lambda: 0) == 0
    assert failed_runs == []


def test_tracking_server_refusal_is_a_user_error(capsys, failed_runs):
    from mlflow.exceptions import RestException

    refused = RestException({"error_code": "PERMISSION_DENIED", "message": "Permission denied for fraud-detector-prod"})
    assert task.run_task("deploy_model", _raise(refused)) == 1
    assert capsys.readouterr().err == "deploy_model: error: PERMISSION_DENIED: Permission denied for fraud-detector-prod\n"


def test_mlflow_error_from_the_rest_client_is_a_user_error(capsys, failed_runs):
    from mlflow.exceptions import MlflowException

    # As MLflow's REST client raises it when the server is down or answers without JSON.
    namespace = {"__name__": "mlflow.utils.rest_utils", "MlflowException": MlflowException}
    exec("def http_request():\n    raise MlflowException('API request to http://127.0.0.1:1 failed')", namespace)
    assert task.run_task("train", namespace["http_request"]) == 1
    assert capsys.readouterr().err == "train: error: API request to http://127.0.0.1:1 failed\n"


def test_mlflow_error_raised_client_side_is_a_bug(failed_runs):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        task.run_task("train", _raise(MlflowException("Invalid metric name: ''")))
    assert failed_runs == ["FAILED"]


def test_outside_a_bundle_run_is_one_line(monkeypatch, capsys, failed_runs):
    from core import runtime, settings

    monkeypatch.delenv(settings.ENV_OUTPUTS.name, raising=False)
    assert task.run_task("train", runtime.context) == 1
    assert capsys.readouterr().err.startswith("train: error: not inside a Conveyor task: CONVEYOR_ENV_OUTPUTS is not set")


def test_bad_model_uri_is_a_task_error():
    from ml.registry import parse_uri

    assert parse_uri("models:/fraud-detector-dev/3") == ("fraud-detector-dev", "3")
    with pytest.raises(task.TaskError, match="must look like models:/<name>/<version>"):
        parse_uri("runs:/abc/model")


def test_medallion_stage_names_itself_in_its_one_line(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from ml.data import medallion

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    pd.DataFrame({"transaction_id": ["t1"]}).to_parquet(tmp_path / "data" / "bronze.parquet")
    with pytest.raises(SystemExit) as exit_:
        medallion.main(["silver", "--params", str(PROJECT / "usecases" / "fraud" / "params.yaml")])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith("error: silver stage: raw table lacks required columns")
