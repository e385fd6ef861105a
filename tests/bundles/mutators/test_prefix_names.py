from bundles.mutators import prefix_names
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("prefix_names.yml")


def test_development_mode_prefixes_every_name_with_the_user(state_from):
    state = state_from(DOC, mode="development", user="ana")
    assert prefix_names.apply(state) == []
    res = state.doc.data["resources"]
    assert res["experiments"]["exp"]["name"] == "dev_ana_exp"  # the key is the default name
    assert res["registered_models"]["model"]["name"] == "dev_ana_fraud-detector"
    assert res["jobs"]["train_job"]["name"] == "dev_ana_train_job"
    assert state.names[("registered_models", "model")] == "dev_ana_fraud-detector"


def test_production_keeps_names_and_name_prefix_overrides(state_from):
    state = state_from(DOC, mode="production", user="ana")
    prefix_names.apply(state)
    assert state.names[("jobs", "train_job")] == "train_job"
    state = state_from(DOC, mode="production", user="ana", target_cfg={"name_prefix": "team_"})
    prefix_names.apply(state)
    assert state.names[("jobs", "train_job")] == "team_train_job"


def test_a_name_may_not_reference_other_resources(state_from, tmp_path):
    text = DOC.replace("name: fraud-detector", "name: ${resources.jobs.train_job.name}")
    state = state_from(text, mode="development", user="ana")
    diags = [d.render() for d in prefix_names.apply(state)]
    line = line_of(tmp_path / "bundle.yml", "name: ${resources")
    assert diags == [f"bundle.yml:{line}: registered_models.model.name may not reference other resources"]
    assert ("registered_models", "model") not in state.names
