from bundles.mutators import target_overrides
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("target_overrides.yml")


def _state(state_from, text=DOC):
    state = state_from(text, target="staging")
    state.target_cfg = state.doc.data["targets"]["staging"]
    return state


def test_overrides_are_deep_merged_and_located_at_the_override(state_from, tmp_path):
    state = _state(state_from)
    assert target_overrides.apply(state) == []
    job = state.doc.data["resources"]["jobs"]["train_job"]
    assert job["max_concurrent_runs"] == 4 and job["tasks"] == {"train": {"python": {"module": "ml.train"}}}
    line = line_of(tmp_path / "bundle.yml", "max_concurrent_runs: 4")
    assert str(state.doc.loc(("resources", "jobs", "train_job", "max_concurrent_runs"))) == f"bundle.yml:{line}"
    assert str(state.doc.loc(("resources", "jobs", "train_job", "tasks", "train"))) == "bundle.yml:7"


def test_a_target_without_overrides_changes_nothing(state_from):
    state = _state(state_from, DOC.split("targets:")[0] + "targets:\n  staging: {}\n")
    before = state.doc.data["resources"]
    assert target_overrides.apply(state) == []
    assert state.doc.data["resources"] is before
