"""`conveyor init project`: a new project that validates and trains with nothing but Conveyor
installed; the answers files that let `copier update` bring a newer template in.

The project is generated outside the checkout (only its use case's code is on PYTHONPATH; the
platform's `ml` and `core` come from the installed package), with the templates' git mirrors in
a tmp dir ($CONVEYOR_TEMPLATES_DIR)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conveyor import init
from tests.ml.conftest import TRAINING_TASKS, run_training_job
from tests.ml.harness import MlEnv

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))
COPIER = str(Path(sys.executable).with_name("copier"))
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def run(cwd: Path, *cmd: str, templates: Path, project: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(GIT_ID, CONVEYOR_TEMPLATES_DIR=str(templates))
    if project is not None:
        env.update(CONVEYOR_PROJECT_DIR=str(project), PYTHONPATH=str(project))
    return subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ID}, check=True, capture_output=True)


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "My Project"], "project name 'My Project' must match [a-z][a-z0-9_-]* (pass --name)"),
    (["--use-case", "Churn-2"], "use case name 'Churn-2' must be a lowercase Python identifier ([a-z][a-z0-9_]*, not a keyword)"),
    (["--port-base", "80"], "--port-base 80 must be between 1024 and 65000"),
    (["--task", "ranking"], "unknown task type 'ranking' (one of: binary_classification, regression)"),
])
def test_bad_answers_are_one_line_and_write_nothing(tmp_path, args, message):
    proc = run(tmp_path, CONVEYOR, "init", "project", "new", *args, "--defaults", templates=tmp_path / "t")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "new").exists()


def test_an_existing_directory_with_files_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    proc = run(tmp_path, CONVEYOR, "init", "project", "taken", "--defaults", templates=tmp_path / "t")
    assert proc.returncode == 2 and "exists and is not an empty directory" in proc.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_a_generated_project_validates_and_trains(mlflow_server, tmp_path):
    templates = tmp_path / "templates"
    made = run(tmp_path, CONVEYOR, "init", "project", "renewals", "--use-case", "renewal", "--task",
               "binary_classification", "--entity-key", "customer_id", "--label", "renewed", "--defaults",
               templates=templates)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "renewals"
    assert {p.name for p in root.iterdir()} >= {"bundle.yml", "resources", "usecases", "Pulumi.yaml", "Pulumi.dev.yaml",
                                                 "Pulumi.staging.yaml", "Pulumi.prod.yaml", "README.md", "stack",
                                                 ".copier-answers.yml", ".gitignore", "dvc.yaml"}
    assert not (root / "ml").exists() and not (root / "core").exists()  # the platform is installed, not copied
    dev = yaml.safe_load((root / "Pulumi.dev.yaml").read_text())["config"]
    assert dev["conveyor:ports"] == {"tracking": 6101, "serving": 6102}

    valid = run(root, CONVEYOR, "bundle", "validate", "-t", "dev", templates=templates, project=root)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "bundle 'renewals', target 'dev' (development, stack dev): valid, 3 resources" in valid.stdout

    env = MlEnv("dev", tmp_path / "env", mlflow_server.uri, project=root,
                extra_env={"CONVEYOR_PROJECT_DIR": str(root), "PYTHONPATH": str(root)})
    run_id, results = run_training_job(env, extra={t: ["--use-case", "renewal"] for t, _ in TRAINING_TASKS})
    for step, proc in results.items():
        assert proc.returncode == 0, f"{step} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert list(results) == [t for t, _ in TRAINING_TASKS]
    assert env.task_values(run_id, "ingest")["data_rows"] == 600
    assert env.task_values(run_id, "train")["model_uri"] == "models:/renewal-dev/1"
    assert env.task_values(run_id, "deploy_model")["promoted"] is True


def test_copier_update_brings_a_new_template_version_and_keeps_local_edits(tmp_path, monkeypatch):
    """A project made from one template version; the template changes (a new Conveyor); `copier
    update` in the project (a clean git tree) applies the change and keeps the user's own edit."""
    shipped = tmp_path / "shipped"
    shutil.copytree(init.TEMPLATES, shipped)
    templates = tmp_path / "templates"
    monkeypatch.setattr(init, "TEMPLATES", shipped)
    monkeypatch.setenv("CONVEYOR_TEMPLATES_DIR", str(templates))
    root = tmp_path / "proj"
    init.render(root, "proj", {"project_name": "proj", "use_case": "spend"}, True, kind="project")
    init.render(root, "spend", {"task": "regression", "entity_key": "store_id", "label": "revenue"}, True)
    answers = yaml.safe_load((root / "usecases" / "spend" / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(templates / "use_case") and answers["_commit"] == f"v{init._version()}"
    assert answers["task"] == "regression" and answers["label"] == "revenue"
    assert yaml.safe_load((root / ".copier-answers.yml").read_text())["project_name"] == "proj"

    features = root / "usecases" / "spend" / "features.py"
    features.write_text(features.read_text() + "# the team's own note\n")  # a local edit, committed
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "generated")

    params = shipped / "use_case" / "template" / "usecases" / "{{ name }}" / "params.yaml.jinja"
    params.write_text(params.read_text() + "# added by a newer template\n")
    assert init.template_repo("use_case") == templates / "use_case"  # the new version, tagged
    proc = run(root, COPIER, "update", "--defaults", "-a", "usecases/spend/.copier-answers.yml", templates=templates)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "usecases" / "spend" / "params.yaml").read_text().endswith("# added by a newer template\n")
    assert features.read_text().endswith("# the team's own note\n")
    updated = yaml.safe_load((root / "usecases" / "spend" / ".copier-answers.yml").read_text())
    assert updated["_commit"] == f"v{init._version()}.post1" and updated["label"] == "revenue"
    # an unchanged template is not a new version
    init.template_repo("use_case")
    tags = subprocess.run(["git", "tag"], cwd=templates / "use_case", capture_output=True, text=True).stdout.split()
    assert sorted(tags) == [f"v{init._version()}", f"v{init._version()}.post1"]


def test_the_project_template_ships_the_platforms_pipeline():
    """A new project's dvc.yaml (the medallion stages ingest runs, shipped in its code wheel) is
    the platform's: the copy in the template follows the repository's."""
    from tests.ml.harness import PROJECT

    assert (init.TEMPLATES / "project" / "template" / "dvc.yaml").read_text() == (PROJECT / "dvc.yaml").read_text()
