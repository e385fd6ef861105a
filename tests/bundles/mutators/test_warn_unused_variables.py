from bundles.mutators import Variables, warn_unused_variables
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("warn_unused_variables.yml")


def test_each_declared_but_unused_variable_is_a_warning_at_its_declaration(state_from, tmp_path):
    state = state_from(DOC, vars=Variables(declared={"rows", "spare", "extra"}, used={"rows"}))
    diags = [d.render() for d in warn_unused_variables.apply(state)]
    path = tmp_path / "bundle.yml"
    assert diags == [
        f"bundle.yml:{line_of(path, 'extra')}: warning: variable 'extra' is never used",
        f"bundle.yml:{line_of(path, 'spare')}: warning: variable 'spare' is never used",
    ]


def test_no_warning_when_every_variable_is_used(state_from):
    state = state_from(DOC, vars=Variables(declared={"rows"}, used={"rows"}))
    assert warn_unused_variables.apply(state) == []
