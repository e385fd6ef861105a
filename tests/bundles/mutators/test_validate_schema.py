from bundles.mutators import validate_schema
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of

DOC = read_doc("validate_schema.yml")


def test_a_valid_document_is_parsed_into_the_models(state_from):
    state = state_from(DOC)
    assert validate_schema.apply(state) == []
    assert state.parsed.resources.jobs["train_job"].tasks["train"].max_retries == 2
    assert state.parsed.targets["dev"].default is True


def test_each_bad_value_is_one_error_at_its_line(state_from, tmp_path):
    text = (DOC.replace("max_retries: 2", "max_retries: lots")
               .replace("          python:\n            module: ml.train\n", "          pyhton: {}\n")
               .replace("dev: {default: true}", "dev: {mode: staging}"))
    state = state_from(text)
    diags = sorted(d.render() for d in validate_schema.apply(state))
    bundle = tmp_path / "bundle.yml"
    assert diags == sorted([
        f"bundle.yml:{line_of(bundle, 'max_retries')}: jobs.train_job.tasks.train.max_retries: "
        "Input should be a valid integer, unable to parse string as an integer",
        f"bundle.yml:{line_of(bundle, 'pyhton')}: unknown key 'pyhton' in jobs.train_job.tasks.train"
        " (did you mean 'python'?)",
        f"bundle.yml:{line_of(bundle, 'mode: staging')}: targets.dev.mode: Input should be 'development' or 'production'",
    ])
    assert state.parsed is None


def test_a_missing_key_points_at_its_parent(state_from, tmp_path):
    state = state_from(DOC.replace("            module: ml.train\n", "            parameters: {}\n"))
    diags = [d.render() for d in validate_schema.apply(state)]
    line = line_of(tmp_path / "bundle.yml", "python:")
    assert diags == [f"bundle.yml:{line}: jobs.train_job.tasks.train.python: missing required key 'module'"]
