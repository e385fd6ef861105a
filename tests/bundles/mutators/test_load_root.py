from bundles.mutators import LoadState, load_root
from tests.bundles.mutators.conftest import write


def test_reads_bundle_yml_into_doc(tmp_path):
    write(tmp_path, {"bundle.yml": "bundle:\n  name: shop\n"})
    state = LoadState(root=tmp_path)
    assert load_root.apply(state) == []
    assert state.doc.data == {"bundle": {"name": "shop"}} and not state.stopped
    assert str(state.doc.loc(("bundle", "name"))) == "bundle.yml:2"


def test_missing_bundle_section_is_an_error_but_loading_goes_on(tmp_path):
    write(tmp_path, {"bundle.yml": "targets: {}\n"})
    state = LoadState(root=tmp_path)
    diags = load_root.apply(state)
    assert [d.render() for d in diags] == ["bundle.yml:1: bundle.yml needs a `bundle:` section with a `name`"]
    assert state.doc is not None and not state.stopped


def test_missing_file_stops(tmp_path):
    state = LoadState(root=tmp_path)
    diags = load_root.apply(state)
    assert [d.render() for d in diags] == ["bundle.yml:1: cannot read bundle.yml: No such file or directory"]
    assert state.stopped and state.doc is None


def test_syntax_error_stops_at_its_line(tmp_path):
    write(tmp_path, {"bundle.yml": "bundle:\n  name: shop\n  bad: [1,\n"})
    state = LoadState(root=tmp_path)
    diags = load_root.apply(state)
    assert state.stopped and state.doc is None
    assert len(diags) == 1 and diags[0].message.startswith("YAML syntax error") and diags[0].loc.file == "bundle.yml"


def test_a_document_that_is_not_a_mapping_stops(tmp_path):
    write(tmp_path, {"bundle.yml": "- one\n- two\n"})
    state = LoadState(root=tmp_path)
    diags = load_root.apply(state)
    assert [d.render() for d in diags] == ["bundle.yml:1: bundle.yml must be a mapping"]
    assert state.stopped and state.doc is None
