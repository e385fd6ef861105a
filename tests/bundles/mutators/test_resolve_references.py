from bundles.mutators import resolve_references
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("resolve_references.yml")


def _params(state):
    return state.doc.data["resources"]["jobs"]["train_job"]["tasks"]["train"]["python"]["parameters"]


def test_resource_references_take_the_final_name_and_scalar_fields(state_from):
    state = state_from(DOC, names={("registered_models", "model"): "dev_ana_model"})
    assert resolve_references.apply(state) == []
    assert _params(state) == {"model": "dev_ana_model", "about": "model fraud"}


def test_bad_resource_references_are_errors_at_their_line(state_from, tmp_path):
    text = (DOC.replace("registered_models.model.name", "registered_models.modle.name")
               .replace("registered_models.model.description", "registered_models.model.tags"))
    text += "              short: ${resources.jobs.train_job}\n"
    state = state_from(text)
    diags = [d.render() for d in resolve_references.apply(state)]
    line = line_of(tmp_path / "bundle.yml", "model: ${")
    about = line_of(tmp_path / "bundle.yml", "about:")
    short = line_of(tmp_path / "bundle.yml", "short:")
    assert diags == [
        f"bundle.yml:{line}: unknown resource in ${{resources.registered_models.modle.name}}"
        " (did you mean 'registered_models.model'?)",
        f"bundle.yml:{about}: ${{resources.registered_models.model.tags}}: resource has no scalar field 'tags'",
        f"bundle.yml:{short}: bad reference ${{resources.jobs.train_job}}: use ${{resources.<kind>.<key>.<field>}}",
    ]


def test_resources_that_are_not_a_mapping_become_empty(state_from):
    state = state_from("bundle: {name: shop}\nresources: [1, 2]\n")
    assert resolve_references.apply(state) == []
    assert state.doc.data["resources"] == {}
