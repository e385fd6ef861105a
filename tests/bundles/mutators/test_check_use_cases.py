from bundles.mutators import check_use_cases
from tests.bundles.mutators.conftest import read_doc
from tests.lines import line_of
from tests.usecase.conftest import FEATURES, MODEL, PARAMS, ROWS, USECASE

DOC = read_doc("check_use_cases.yml")

FILES = {"usecases/__init__.py": "", "usecases/tiny/__init__.py": "", "usecases/tiny/usecase.yml": USECASE,
         "usecases/tiny/params.yaml": PARAMS, "usecases/tiny/features.py": FEATURES,
         "usecases/tiny/model.py": MODEL, "usecases/tiny/rows.csv": ROWS}


def test_a_job_naming_a_valid_use_case_has_no_diagnostics(state_from):
    assert check_use_cases.apply(state_from(DOC, FILES, target="dev")) == []


def test_an_unknown_use_case_is_an_error_at_the_parameter(state_from, tmp_path):
    state = state_from(DOC.replace("use_case: tiny", "use_case: tiyn"), FILES, target="dev")
    line = line_of(tmp_path / "bundle.yml", "use_case: tiyn")
    assert [d.render() for d in check_use_cases.apply(state)] == [
        f"bundle.yml:{line}: unknown use case 'tiyn': no usecases/tiyn/usecase.yml (did you mean 'tiny'?)"]


def test_a_bad_use_case_is_reported_in_its_own_file(state_from, tmp_path):
    files = {**FILES, "usecases/tiny/usecase.yml": USECASE.replace("task: binary_classification", "task: ranking")}
    (diag,) = check_use_cases.apply(state_from(DOC, files, target="dev"))
    line = line_of(tmp_path / "usecases/tiny/usecase.yml", "task: ranking")
    assert diag.render().startswith(f"usecases/tiny/usecase.yml:{line}: unknown task type 'ranking'")


def test_jobs_without_a_use_case_are_not_checked(state_from):
    assert check_use_cases.apply(state_from(DOC.replace("use_case", "flavour").replace("use-case", "flavour"),
                                            target="dev")) == []
