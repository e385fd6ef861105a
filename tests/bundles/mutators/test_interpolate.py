from bundles.mutators import Variables, interpolate
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("interpolate.yml")

BUILTINS = {"bundle.name": "shop", "bundle.target": "dev"}


def _state(state_from, text=DOC, values=None, missing=()):
    values = {"rows": 10, "persona": "ci"} if values is None else values
    variables = Variables(values=values, missing=set(missing), declared=set(values) | set(missing))
    return state_from(text, builtins=BUILTINS, vars=variables)


def _params(state):
    return state.doc.data["resources"]["jobs"]["train_job"]["tasks"]["train"]["python"]["parameters"]


def test_variables_and_bundle_values_are_replaced_in_resources_and_targets(state_from):
    state = _state(state_from)
    assert interpolate.apply(state) == []
    params = _params(state)
    assert params["rows"] == 10  # a whole-string reference keeps the value's type
    assert params["label"] == "dev-10"
    assert params["model"] == "${resources.registered_models.m.name}"  # left for resolve_references
    assert state.doc.data["targets"]["dev"]["run_as"] == "ci"
    assert state.vars.used == {"rows", "persona"}


def test_a_variable_built_from_others_is_resolved(state_from):
    state = _state(state_from, values={"rows": "${var.base}", "base": 7, "persona": "ci"})
    interpolate.apply(state)
    assert _params(state)["rows"] == 7 and "base" in state.vars.used


def test_unresolvable_references_are_errors_at_their_line(state_from, tmp_path):
    text = DOC.replace("${var.rows}\n", "${var.rowz}\n").replace("${bundle.target}", "${bundle.targt}")
    state = _state(state_from, text, values={"rows": 10}, missing=["persona"])
    diags = [d.render() for d in interpolate.apply(state)]
    rows = line_of(tmp_path / "bundle.yml", "rows:")
    label = line_of(tmp_path / "bundle.yml", "label:")
    run_as = line_of(tmp_path / "bundle.yml", "run_as:")
    assert diags == [
        f"bundle.yml:{rows}: undefined variable ${{var.rowz}} (did you mean 'rows'?)",
        f"bundle.yml:{label}: unknown reference ${{bundle.targt}} (did you mean 'bundle.target'?)",
        f"bundle.yml:{run_as}: variable 'persona' has no value: pass --var persona=..., set BUNDLE_VAR_persona, "
        "set it in the target, or give it a default",
    ]
    assert _params(state)["rows"] == "${var.rowz}"  # left as written


def test_a_variable_that_refers_to_itself_is_an_error(state_from):
    state = _state(state_from, values={"rows": "${var.rows}", "persona": "ci"})
    diags = [d.message for d in interpolate.apply(state)]
    assert "variable 'rows' refers to itself" in diags


def test_an_unknown_namespace_is_an_error(state_from):
    state = _state(state_from, DOC.replace("${var.rows}\n", "${env.HOME}\n"))
    diags = [d.message for d in interpolate.apply(state)]
    assert diags == ["unknown reference ${env.HOME} (use var.*, bundle.* or resources.*)"]
