"""`check_default_endpoint`: one `default: true` serving endpoint per environment (target)."""

from bundles.loader import load_bundle
from bundles.mutators import check_default_endpoint
from tests.bundles.mutators.conftest import read_doc, write
from tests.lines import line_of

DOC = read_doc("check_default_endpoint.yml")
TWO_DEFAULTS = DOC.replace("      use_case: diabetes\n", "      use_case: diabetes\n      default: true\n")


def test_one_default_and_one_named_endpoint_is_fine(state_from):
    assert check_default_endpoint.apply(state_from(DOC)) == []


def test_no_default_endpoint_is_fine(state_from):
    assert check_default_endpoint.apply(state_from(DOC.replace("      default: true\n", ""))) == []


def test_a_second_default_is_an_error_at_its_line_naming_the_first(state_from, tmp_path):
    state = state_from(TWO_DEFAULTS)
    diags = check_default_endpoint.apply(state)
    lines = (tmp_path / "bundle.yml").read_text().splitlines()
    first, second = [i for i, line in enumerate(lines, 1) if line.strip() == "default: true"]
    assert [d.render() for d in diags] == [
        f"bundle.yml:{second}: serving endpoint 'diabetes_endpoint' is `default: true`, and so is 'fraud_endpoint' "
        f"(bundle.yml:{first}): an environment has one default endpoint (served at /predict); remove `default` "
        f"from all but one (the others are served at /<key>/predict)"]
    assert diags[0].severity == "error"


def test_bundle_validate_reports_it_for_the_target_that_sets_it_in_an_included_file(tmp_path):
    """Through the whole pipeline: the second default comes from an included file in one target only."""
    write(tmp_path, {
        "bundle.yml": DOC.replace("targets:\n  dev: {default: true}\n", """\
include: [resources/*.yml]
targets:
  dev: {default: true}
  staging:
    resources:
      serving_endpoints:
        churn_endpoint: {default: true}
"""),
        "resources/churn.yml": """\
resources:
  serving_endpoints:
    churn_endpoint:
      model: churn
      served:
        - {alias: champion, traffic_percentage: 100}
""",
    })
    _, dev = load_bundle(tmp_path, "dev", environ={})
    assert not [d for d in dev if "default endpoint" in d.message]
    bundle, staging = load_bundle(tmp_path, "staging", environ={})
    errors = [d.render() for d in staging if "default endpoint" in d.message]
    assert bundle is None
    line = line_of(tmp_path / "bundle.yml", "churn_endpoint: {default: true}")
    assert len(errors) == 1 and errors[0].startswith(f"bundle.yml:{line}: serving endpoint 'churn_endpoint' is "
                                                     f"`default: true`, and so is 'fraud_endpoint' (bundle.yml:")
