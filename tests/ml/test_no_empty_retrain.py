"""No empty retrains (unit level; the job-level run is tests/ml/test_data_sources_job.py): what
`changed` decides from the three versions, what counts as code and params, and that a tie with
the champion is no improvement."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import pytest

from ml.deployment.deploy_model import decide as promote
from ml.training import fingerprint
from ml.training.changed import decide
from ml.usecase import load_use_case
from ml.usecase.metrics import beats
from tests.ml.harness import PROJECT


@dataclass
class Version:
    version: str
    tags: dict = field(default_factory=dict)


NOW = {"data_version": "d" * 32, "code_version": "c" * 16, "params_version": "p" * 16}


def test_the_champions_three_versions_mean_nothing_to_train():
    train, why = decide(NOW, Version("3", {**NOW, "model_validation_status": "PASSED"}), [])
    assert not train and why.startswith("nothing changed: data dddddddddddd, code cccccccccccc, params pppppppppppp "
                                        "are champion v3's")


@pytest.mark.parametrize("key, shown", [("data_version", "data"), ("code_version", "code"), ("params_version", "params")])
def test_any_one_change_trains_and_says_which(key, shown):
    champion = Version("3", {**NOW, key: "0" * 32})
    train, why = decide(NOW, champion, [])
    assert train and why == f"changed since champion v3: {shown} 000000000000 -> {NOW[key][:12]}"


def test_a_champion_trained_before_versions_were_tagged_is_a_change():
    train, why = decide(NOW, Version("1", {"data_version": NOW["data_version"]}), [])
    assert train and "code unknown -> cccccccccccc" in why


def test_a_version_already_judged_on_the_same_three_is_not_trained_again():
    refused = Version("4", {**NOW, "model_validation_status": "FAILED"})
    train, why = decide(NOW, Version("3", {**NOW, "data_version": "e" * 32}), [refused])
    assert not train and "are v4's (validation FAILED)" in why
    assert decide(NOW, None, []) == (True, "no champion yet")


def test_code_and_params_versions_follow_what_shapes_the_model(tmp_path):
    shutil.copytree(PROJECT / "usecases", tmp_path / "usecases", ignore=shutil.ignore_patterns("__pycache__"))
    uc = load_use_case("fraud", root=tmp_path)
    params = uc.load_params()
    code = fingerprint.code_version(uc)
    assert code == fingerprint.code_version(load_use_case("fraud", root=PROJECT))  # contents and names, not where
    (uc.dir / "params.yaml").write_text((uc.dir / "params.yaml").read_text() + "\n# a comment\n")
    assert fingerprint.code_version(uc) == code  # params.yaml is the params' part, not code
    (uc.dir / "features.py").write_text((uc.dir / "features.py").read_text() + "\n# an edit\n")
    assert fingerprint.code_version(uc) != code
    base = fingerprint.params_version(params)
    assert fingerprint.params_version(uc.load_params(["model_validation.min_roc_auc=0.5"])) == base  # a gate judges
    assert fingerprint.params_version(uc.load_params(["train.max_iter=7"])) != base
    assert fingerprint.params_version(uc.load_params(["split.test_fraction=0.3"])) != base


def test_a_tie_is_no_improvement_whatever_the_margin():
    assert not beats("binary_classification", "pr_auc", 0.5841, 0.5841, 0.0)
    assert beats("binary_classification", "pr_auc", 0.5842, 0.5841, 0.0)
    assert not beats("binary_classification", "pr_auc", 0.59, 0.58, 0.02)
    assert not beats("regression", "rmse", 58.0, 58.0) and beats("regression", "rmse", 57.9, 58.0)
    assert not beats("binary_classification", "pr_auc", float("nan"), 0.5)
    same = {"roc_auc": 0.9, "pr_auc": 0.5841}
    promoted, why = promote("pr_auc", 0.0, same, dict(same), {})
    assert not promoted and "+0.0000: not better" in why
