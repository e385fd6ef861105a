from bundles.mutators import check_semantics
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("check_semantics.yml")

FILES = {"demo_tasks/__init__.py": "", "demo_tasks/step.py": ""}


def test_a_consistent_document_has_no_diagnostics(state_from):
    state = state_from(DOC, FILES, target="dev")
    assert check_semantics.apply(state) == []


def test_cross_reference_errors_point_at_their_line(state_from, tmp_path):
    state = state_from(DOC.replace("depends_on: [ingest]", "depends_on: [ingets]"), FILES, target="dev")
    diags = [d.render() for d in check_semantics.apply(state)]
    line = line_of(tmp_path / "bundle.yml", "depends_on")
    assert f"bundle.yml:{line}: task 'train' depends on unknown task 'ingets' (did you mean 'ingest'?)" in diags
