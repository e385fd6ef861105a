from bundles.mutators import resolve_variables
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("resolve_variables.yml")


def _state(state_from, text=DOC, **kw):
    state = state_from(text, target="dev", **kw)
    state.target_cfg = state.doc.data["targets"]["dev"]
    return state


def test_precedence_cli_then_environment_then_target_then_default(state_from):
    state = _state(state_from, cli_vars={"from_cli": "c"}, environ={"BUNDLE_VAR_from_cli": "e", "BUNDLE_VAR_from_env": "e"})
    assert resolve_variables.apply(state) == []
    assert state.vars.values == {"from_cli": "c", "from_env": "e", "from_target": "t", "from_default": "d"}
    assert state.vars.missing == {"without_value"}
    assert state.vars.declared == {"from_cli", "from_env", "from_target", "from_default", "without_value"}


def test_setting_an_undeclared_variable_is_an_error(state_from, tmp_path):
    text = DOC.replace("      from_target: t\n", "      from_targt: t\n")
    state = _state(state_from, text, cli_vars={"from_clj": "x"})
    diags = [d.render() for d in resolve_variables.apply(state)]
    line = line_of(tmp_path / "bundle.yml", "from_targt")
    assert diags == [
        "--var from_clj: no such variable (did you mean 'from_cli'?)",
        f"bundle.yml:{line}: target 'dev' sets undeclared variable 'from_targt' (did you mean 'from_target'?)",
    ]
