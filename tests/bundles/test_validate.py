"""`validate`: every error kind reported at once with the right file:line; variables; modes; schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from bundles.loader import load_bundle
from bundles.models import schema
from tests.bundles.mutators.conftest import write as _write
from tests.lines import line_of

ROOT = """\
bundle:
  name: shop
include:
  - resources/*.yml
variables:
  rows:
    description: rows to read
    default: 10
targets:
  dev:
    mode: development
    default: true
  prod:
    mode: production
    run_as: ci
    git:
      branch: release
"""

JOB = """\
resources:
  jobs:
    train_job:
      tasks:
        ingest:
          python:
            module: ml.ingest
            parameters:
              rows: ${var.rows}
        train:
          depends_on: [ingest]
          python:
            module: ml.train
"""


def _errors(root: Path, target: str | None = None, **kw) -> list[str]:
    bundle, diags = load_bundle(root, target, user="tester", **kw)
    return [d.render() for d in diags if d.severity == "error"]


def test_valid_bundle_has_no_errors(tmp_path):
    root = _write(tmp_path, {"bundle.yml": ROOT, "resources/jobs.yml": JOB})
    bundle, diags = load_bundle(root, user="tester")
    assert bundle is not None, [d.render() for d in diags]
    assert bundle.target == "dev" and bundle.resources.jobs["train_job"].name == "dev_tester_train_job"


@pytest.mark.parametrize("case, bad_text, needle, message", [
    ("unknown key", JOB.replace("depends_on: [ingest]", "dependson: [ingest]"), "dependson",
     "unknown key 'dependson' in jobs.train_job.tasks.train (did you mean 'depends_on'?)"),
    ("bad cron", JOB.replace("    train_job:\n", "    train_job:\n      schedule:\n        cron: \"0 25 * * *\"\n"), "cron:",
     "bad cron '0 25 * * *'"),
    ("cron field count", JOB.replace("    train_job:\n", "    train_job:\n      schedule:\n        cron: \"daily\"\n"), "cron:",
     "expected 5 fields"),
    ("cycle", JOB.replace("        ingest:\n", "        ingest:\n          depends_on: [train]\n"), "depends_on: [train]",
     "cycle in depends_on of job 'train_job'"),
    ("unknown task ref", JOB.replace("depends_on: [ingest]", "depends_on: [ingets]"), "depends_on: [ingets]",
     "task 'train' depends on unknown task 'ingets' (did you mean 'ingest'?)"),
    ("undefined variable", JOB.replace("${var.rows}", "${var.row}"), "${var.row}",
     "undefined variable ${var.row} (did you mean 'rows'?)"),
    ("task value not upstream", JOB.replace("module: ml.train", "module: ml.train\n            parameters:\n              x: \"{{tasks.nope.values.k}}\""),
     "{{tasks.nope", "unknown task 'nope'"),
    ("missing module", JOB.replace("          python:\n            module: ml.train\n", "          python:  # here\n            parameters: {}\n"), "# here",
     "missing required key 'module'"),
    ("bad type", JOB.replace("          python:\n            module: ml.train", "          max_retries: lots\n          python:\n            module: ml.train"),
     "max_retries", "jobs.train_job.tasks.train.max_retries: Input should be a valid integer"),
    ("unknown run_job", JOB.replace("          python:\n            module: ml.train", "          run_job:\n            job: other_job"),
     "job: other_job", "task 'train' runs unknown job 'other_job'"),
])
def test_each_error_kind_points_at_file_and_line(tmp_path, case, bad_text, needle, message):
    root = _write(tmp_path, {"bundle.yml": ROOT, "resources/jobs.yml": bad_text})
    errors = _errors(root)
    line = line_of(root / "resources/jobs.yml", needle)
    expected = f"resources/jobs.yml:{line}: "
    assert any(e.startswith(expected) and message in e for e in errors), (case, errors)


def test_all_errors_reported_at_once(tmp_path):
    bad = (JOB.replace("depends_on: [ingest]", "depends_on: [ingets]")
              .replace("${var.rows}", "${var.nope}")
              .replace("    train_job:\n", "    train_job:\n      schedule:\n        cron: \"61 * * * *\"\n      colour: red\n"))
    root_text = ROOT.replace("    run_as: ci\n", "")
    root = _write(tmp_path, {"bundle.yml": root_text, "resources/jobs.yml": bad})
    errors = _errors(root)
    assert len(errors) == 5, errors
    assert any(e.startswith("bundle.yml:13: production target 'prod' needs `run_as`") for e in errors)
    assert any("unknown key 'colour'" in e for e in errors)


def test_yaml_syntax_error_and_duplicate_resources(tmp_path):
    root = _write(tmp_path, {
        "bundle.yml": ROOT,
        "resources/jobs.yml": JOB,
        "resources/more.yml": "resources:\n  jobs:\n    train_job:\n      tasks: {a: {python: {module: m}}}\n",
        "resources/broken.yml": "resources:\n  jobs: [\n",
    })
    errors = _errors(root)
    assert any(e.startswith("resources/broken.yml:3: YAML syntax error") for e in errors), errors
    assert any(e.startswith("resources/more.yml:3: duplicate resource jobs.train_job (first defined at resources/jobs.yml:3)")
               for e in errors), errors


def test_unknown_top_level_key_and_target(tmp_path):
    root = _write(tmp_path, {"bundle.yml": ROOT.replace("include:", "inclde:"), "resources/jobs.yml": JOB})
    errors = _errors(root)
    assert any(e.startswith("bundle.yml:3: unknown key 'inclde' (did you mean 'include'?)") for e in errors), errors
    errors = _errors(_write(tmp_path, {"bundle.yml": ROOT}), target="prd")
    assert any("unknown target 'prd'" in e and "did you mean 'prod'" in e for e in errors), errors


def test_variable_precedence(tmp_path):
    root = _write(tmp_path, {
        "bundle.yml": ROOT.replace("    git:\n", "    variables:\n      rows: 30\n    git:\n"),
        "resources/jobs.yml": JOB,
    })

    def rows(target, **kw):
        bundle, diags = load_bundle(root, target, user="tester", **kw)
        assert bundle is not None, [d.render() for d in diags]
        return bundle.resources.jobs["train_job"].tasks["ingest"].python.parameters["rows"]

    assert rows("dev", environ={}) == 10  # default
    assert rows("prod", environ={}) == 30  # target value
    assert rows("prod", environ={"BUNDLE_VAR_rows": "40"}) == "40"  # env beats target
    assert rows("prod", environ={"BUNDLE_VAR_rows": "40"}, cli_vars={"rows": "50"}) == "50"  # --var beats all
    # a variable may be built from other references
    assert rows("prod", environ={"BUNDLE_VAR_rows": "${bundle.target}-${bundle.mode}"}) == "prod-production"
    loop = _errors(root, "dev", environ={"BUNDLE_VAR_rows": "x${var.rows}"})
    assert any("variable 'rows' refers to itself" in e for e in loop), loop
    errors = _errors(root, "dev", cli_vars={"rowz": "1"})
    assert any("--var rowz: no such variable (did you mean 'rows'?)" in e for e in errors)


def test_interpolation_and_modes(tmp_path):
    job = JOB + (
        "  registered_models:\n"
        "    model:\n"
        "      name: fraud\n"
        '      description: "trained by ${resources.jobs.train_job.name} on ${bundle.target} at ${bundle.git.commit}"\n'
    )
    job = job.replace("    train_job:\n", "    train_job:\n      schedule:\n        cron: \"0 3 * * *\"\n")
    root = _write(tmp_path, {"bundle.yml": ROOT, "resources/jobs.yml": job})
    dev, _ = load_bundle(root, "dev", user="tester")
    prod, _ = load_bundle(root, "prod", user="tester")
    assert dev.resources.registered_models["model"].name == "dev_tester_fraud"
    assert dev.resources.registered_models["model"].description.startswith("trained by dev_tester_train_job on dev at ")
    assert dev.resources.jobs["train_job"].schedule.pause_status == "PAUSED"
    assert prod.resources.registered_models["model"].name == "fraud"
    assert prod.resources.jobs["train_job"].schedule.pause_status == "UNPAUSED"
    assert prod.deployment_id() == "shop.prod" and dev.deployment_id() == "shop.dev.tester"


def test_target_overrides_are_merged(tmp_path):
    root_text = ROOT + (
        "  staging:\n"
        "    mode: production\n"
        "    run_as: ci\n"
        "    git: {branch: main}\n"
        "    resources:\n"
        "      jobs:\n"
        "        train_job:\n"
        "          tasks:\n"
        "            train:\n"
        "              max_retries: 3\n"
    )
    root = _write(tmp_path, {"bundle.yml": root_text, "resources/jobs.yml": JOB})
    bundle, diags = load_bundle(root, "staging", user="tester")
    assert bundle is not None, [d.render() for d in diags]
    assert bundle.resources.jobs["train_job"].tasks["train"].max_retries == 3
    assert bundle.resources.jobs["train_job"].tasks["train"].python.module == "ml.train"


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from bundles.cli import app; app()", *args], cwd=cwd,
                          env={k: v for k, v in os.environ.items() if k != "CONVEYOR_PROJECT_DIR"},
                          capture_output=True, text=True, timeout=120)


def test_cli_validate_exit_codes_and_strict(tmp_path):
    root = _write(tmp_path, {"bundle.yml": ROOT, "resources/jobs.yml": JOB.replace("depends_on: [ingest]", "dependson: [ingest]")})
    proc = _cli(root, "validate")
    assert proc.returncode == 1
    assert "resources/jobs.yml:11: unknown key 'dependson'" in proc.stderr
    assert "Traceback" not in proc.stderr

    (root / "resources/jobs.yml").write_text(JOB)
    assert _cli(root, "validate").returncode == 0
    # an unused variable is only a warning; --strict makes it fail
    (root / "bundle.yml").write_text(ROOT.replace("variables:\n", "variables:\n  unused:\n    default: 1\n"))
    ok = _cli(root, "validate")
    assert ok.returncode == 0 and "warning: variable 'unused' is never used" in ok.stderr
    strict = _cli(root, "validate", "--strict")
    assert strict.returncode == 1
    as_json = json.loads(_cli(root, "validate", "-o", "json", "--strict").stdout)
    assert as_json["valid"] is False and as_json["diagnostics"][0]["line"] == 6


def test_schema_validates_the_repo_bundle_and_fixture(tmp_path):
    doc = schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    yaml = YAML(typ="safe")
    fixture = Path(__file__).parent / "fixtures" / "project"
    for path in [fixture / "bundle.yml", *sorted((fixture / "resources").glob("*.yml"))]:
        jsonschema.validate(yaml.load(path.read_text()), doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"resources": {"jobs": {"j": {"tasks": {}, "colour": 1}}}}, doc)
    proc = _cli(tmp_path, "schema")
    assert proc.returncode == 0 and json.loads(proc.stdout)["title"] == "Conveyor bundle"


def test_repo_bundle_is_valid_for_every_target():
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "bundle.yml").exists():
        pytest.skip("no bundle.yml at the repo root")
    for target in ("dev", "staging", "prod"):
        bundle, diags = load_bundle(repo, target, user="tester")
        assert bundle is not None, [d.render() for d in diags if d.severity == "error"]


def test_docs_example_is_a_valid_bundle(tmp_path):
    """The resources example in docs/bundles.md must stay true."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "bundles.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    example = next(b for b in blocks if b.startswith("resources:"))
    root = _write(tmp_path, {
        "bundle.yml": ROOT.replace("  rows:\n    description: rows to read\n    default: 10\n",
                                   "  training_rows:\n    default: 10\n"),
        "resources/example.yml": example,
    })
    bundle, diags = load_bundle(root, "prod", user="tester")
    assert bundle is not None, [d.render() for d in diags]
    assert not [d for d in diags if d.severity == "error"]


def test_task_module_typo_is_an_error(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(Path(__file__).parent / "fixtures" / "project", root)
    jobs = root / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("module: demo_tasks.step\n            parameters:\n              name: publish",
                                             "module: demo_tasks.stpe\n            parameters:\n              name: publish"))
    errors = _errors(root)
    line = line_of(jobs, "demo_tasks.stpe")
    assert f"resources/jobs.yml:{line}: task 'publish': module 'demo_tasks.stpe' not found in the project (did you mean 'step'?)" in errors
    jobs.write_text(jobs.read_text().replace("demo_tasks.stpe", "some_library.entry"))
    bundle, diags = load_bundle(root, user="tester")
    assert bundle is not None  # an installed library's module is only a warning
    assert any("'some_library.entry' is not part of the project" in d.message for d in diags)
