"""docs/use-cases.md is a walk-through a new user follows: its commands exist, its YAML and Python
parse, and its steps — init, declare your columns, serve, monitor — give a bundle that validates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.init.test_init import conveyor, copy_project

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "use-cases.md"
DOC = DOC_PATH.read_text()
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def block(lang: str, first_line: str) -> str:
    """The `lang` block whose first line is `first_line` (the file it shows)."""
    (found,) = [b for b in blocks(lang) if b.splitlines()[0] == first_line]
    return found


def shell_lines() -> list[str]:
    text = "\n".join(blocks("bash")).replace("\\\n", " ")
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        lines.extend(part.strip() for part in line.split("&&") if part.strip())
    return lines


def conveyor_paths() -> list[list[str]]:
    seen: dict[tuple, None] = {}
    for line in shell_lines():
        if line.startswith("conveyor "):
            words = []
            for word in line.split()[1:]:
                if word.startswith("-") or not re.fullmatch(r"[a-z][a-z_-]*", word):
                    break
                words.append(word)
            seen.setdefault(tuple(words[:2]))
    return [list(p) for p in seen]


@pytest.mark.parametrize("path", conveyor_paths(), ids=lambda p: " ".join(p))
def test_every_conveyor_command_in_the_doc_exists(path):
    proc = subprocess.run([CONVEYOR, *path, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"`conveyor {' '.join(path)}` from docs/use-cases.md does not exist:\n{proc.stderr}"


def test_the_doc_walks_every_step():
    lines = shell_lines()
    for step in ("conveyor init use-case", "conveyor bundle validate -t dev", "conveyor bundle deploy -t dev",
                 "conveyor bundle run churn_training_job -t dev", "conveyor bundle run churn_monitoring_job -t dev"):
        assert any(line.startswith(step) for line in lines), step
    assert any("/churn_endpoint/predict" in line and line.startswith("curl") for line in lines)


def test_every_linked_file_exists():
    for link in re.findall(r"\]\(([^)#]+)\)", DOC):
        if "://" not in link:
            assert (DOC_PATH.parent / link).exists(), f"docs/use-cases.md links to missing {link}"


def test_every_yaml_and_python_block_parses():
    for text in blocks("yaml"):
        assert isinstance(yaml.safe_load(text), dict)
    for text in blocks("python"):
        compile(text, "docs/use-cases.md", "exec")


def merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


@pytest.mark.slow
def test_following_the_doc_gives_a_valid_bundle(tmp_path):
    root = copy_project(tmp_path / "project")
    (init,) = [line for line in shell_lines() if line.startswith("conveyor init use-case")]
    made = conveyor(root, *init.split()[1:], "--defaults")
    assert made.returncode == 0, made.stderr
    assert conveyor(root, "bundle", "validate", "-t", "dev").returncode == 0, "the generated use case validates"

    # step 2: your columns, your features, your CSV (its header and rows as the doc shows them)
    base = root / "usecases" / "churn"
    (base / "usecase.yml").write_text(block("yaml", "# usecases/churn/usecase.yml"))
    (base / "features.py").write_text(block("python", "# usecases/churn/features.py"))
    (base / "data" / "churn.csv").write_text(blocks("csv")[0])
    (base / "data" / "sample.csv").unlink()
    # steps 5 and 6: the endpoint, the rollout task, the monitor and its job
    resources = root / "resources" / "churn.yml"
    doc = yaml.safe_load(resources.read_text())
    for first_line in ("# resources/churn.yml, under resources:",):
        for text in [b for b in blocks("yaml") if b.splitlines()[0] == first_line]:
            merge(doc["resources"], yaml.safe_load(text))
    merge(doc["resources"]["jobs"]["churn_training_job"]["tasks"],
          yaml.safe_load(block("yaml", "# resources/churn.yml, under jobs.churn_training_job.tasks:")))
    merge(doc["resources"]["jobs"], yaml.safe_load(block("yaml", "# resources/churn.yml, under jobs:")))
    resources.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))

    valid = conveyor(root, "bundle", "validate", "-t", "dev")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    # and a CSV that does not match the declaration is caught there, at the source's line
    (base / "data" / "churn.csv").write_text(blocks("csv")[0].replace(",plan,", ",tariff,"))
    bad = conveyor(root, "bundle", "validate", "-t", "dev")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "usecases/churn/data/churn.csv does not match dataset.columns: declared but missing ['plan']; " \
           "not declared ['tariff']" in bad.stdout + bad.stderr
