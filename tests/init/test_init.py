"""`conveyor init use-case`: what it generates validates and trains; bad answers are one line.

The slow test works on a copy of the project (its code, bundle and use cases), so the real
checkout never gains a use case."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ml.conftest import TRAINING_TASKS, run_training_job
from tests.ml.harness import PROJECT, MlEnv

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))
COPIED = ["core", "bundles", "ml", "usecases", "infra", "conveyor", "resources", "bundle.yml", "dvc.yaml",
          "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "pyproject.toml"]


def copy_project(dest: Path) -> Path:
    for name in COPIED:
        src = PROJECT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def conveyor(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`conveyor …` run on the project at `root`, with that project's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update({"CONVEYOR_PROJECT_DIR": str(root), "PYTHONPATH": str(root)})
    return subprocess.run([CONVEYOR, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def bare(tmp_path) -> Path:
    """A project holding one use case, `fraud` (enough for the answers to be judged)."""
    (tmp_path / "usecases" / "fraud").mkdir(parents=True)
    (tmp_path / "usecases" / "fraud" / "usecase.yml").write_text("name: fraud\n")
    (tmp_path / "resources").mkdir()
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["Churn-2"], "use case name 'Churn-2' must be a lowercase Python identifier"),
    (["class"], "use case name 'class' must be a lowercase Python identifier"),
    (["fraud"], "use case 'fraud' already exists"),
    (["churn", "--task", "multiclass"], "unknown task type 'multiclass' (one of: binary_classification, regression)"),
    (["churn", "--label", "Churned!"], "--label 'Churned!' must be a lowercase identifier"),
    (["churn", "--entity-key", "amount"], "--entity-key 'amount' is a column of the sample dataset"),
    (["churn", "--entity-key", "who", "--label", "who"], "--entity-key and --label are both 'who'"),
])
def test_bad_answers_are_one_line_and_write_nothing(bare, args, message):
    proc = conveyor(bare, "init", "use-case", *args, "--defaults", "--project-dir", str(bare))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}" + proc.stderr.split(message, 1)[1].rstrip()]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (bare / "usecases").iterdir()) == ["fraud"] and not any((bare / "resources").iterdir())


def test_flags_answer_the_template(bare):
    proc = conveyor(bare, "init", "use-case", "spend", "--task", "regression", "--entity-key", "store_id",
                    "--label", "revenue", "--defaults", "--project-dir", str(bare))
    assert proc.returncode == 0, proc.stderr
    base = bare / "usecases" / "spend"
    assert {p.name for p in base.iterdir()} >= {"usecase.yml", "params.yaml", "features.py", "model.py", "data"}
    assert (base / "data" / "sample.csv").read_text().splitlines()[0] == \
        "row_id,store_id,event_time,amount,quantity,segment,revenue"
    assert "task: regression" in (base / "usecase.yml").read_text()
    assert "spend_training_job:" in (bare / "resources" / "spend.yml").read_text()



def test_the_generated_job_gates_training_on_changes_like_the_shipped_jobs(bare):
    """The template's job has the `changed` condition task (no empty retrains) between ingest and
    validate_data, as model_training.yml and diabetes.yml have it."""
    import yaml

    proc = conveyor(bare, "init", "use-case", "spend", "--defaults", "--project-dir", str(bare))
    assert proc.returncode == 0, proc.stderr
    tasks = yaml.safe_load((bare / "resources" / "spend.yml").read_text())["resources"]["jobs"]["spend_training_job"]["tasks"]
    shipped = yaml.safe_load((PROJECT / "resources" / "model_training.yml").read_text())
    fraud = shipped["resources"]["jobs"]["model_training_job"]["tasks"]
    assert tasks["changed"]["depends_on"] == ["ingest"] and tasks["validate_data"]["depends_on"] == ["changed"]
    assert tasks["changed"]["condition"]["module"] == fraud["changed"]["condition"]["module"] == "ml.training.changed"
    assert set(tasks["changed"]["condition"]["parameters"]) == set(fraud["changed"]["condition"]["parameters"])
    assert tasks["changed"]["condition"]["parameters"]["model-name"] == "${resources.registered_models.spend_model.name}"


@pytest.mark.slow
def test_a_generated_use_case_validates_and_trains(mlflow_server, tmp_path):
    """Regression here; a classification use case trains in a generated project
    (test_init_project.py), so each task type trains once."""
    root = copy_project(tmp_path / "project")
    name = "spend"  # its own registered model on the shared server
    made = conveyor(root, "init", "use-case", name, "--task", "regression", "--entity-key", "customer_id",
                    "--label", "churned", "--defaults")
    assert made.returncode == 0, made.stderr
    valid = conveyor(root, "bundle", "validate", "-t", "dev")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "valid" in valid.stdout

    env = MlEnv("dev", tmp_path / "env", mlflow_server.uri, project=root,
                extra_env={"CONVEYOR_PROJECT_DIR": str(root), "PYTHONPATH": str(root)})
    run_id, results = run_training_job(env, extra={t: ["--use-case", name] for t, _ in TRAINING_TASKS})
    for step, proc in results.items():
        assert proc.returncode == 0, f"{step} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert list(results) == [t for t, _ in TRAINING_TASKS]
    assert env.task_values(run_id, "ingest")["data_rows"] == 600
    assert env.task_values(run_id, "train")["model_uri"] == f"models:/{name}-dev/1"
    assert env.task_values(run_id, "deploy_model")["promoted"] is True
