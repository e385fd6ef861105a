"""`check_endpoint_rollouts`: a serving endpoint's `rollout` (and its `sla` limits) is checked at validate time."""

import os
import subprocess
import sys

from bundles.mutators import check_endpoint_rollouts
from tests.bundles.mutators.conftest import read_doc, write
from tests.lines import line_of

DOC = read_doc("check_endpoint_rollouts.yml")


def test_limits_in_range_are_fine(state_from):
    assert check_endpoint_rollouts.apply(state_from(DOC)) == []


def test_a_limit_out_of_range_is_an_error_at_its_line(state_from, tmp_path):
    text = DOC.replace("max_rows_per_request: 500", "max_rows_per_request: 0")
    diags = check_endpoint_rollouts.apply(state_from(text))
    line = line_of(tmp_path / "bundle.yml", "max_rows_per_request: 0")
    assert [d.render() for d in diags] == [
        f"bundle.yml:{line}: serving_endpoints.fraud_endpoint.rollout.sla.max_rows_per_request: "
        f"Input should be greater than or equal to 1"]
    assert diags[0].severity == "error"


def test_a_body_limit_too_small_and_a_misspelt_key_are_each_reported(state_from, tmp_path):
    text = DOC.replace("max_body_bytes: 262144", "max_body_bytes: 10").replace("p95_ms: 500", "max_rows_per_reqest: 5")
    rendered = [d.render() for d in check_endpoint_rollouts.apply(state_from(text))]
    assert rendered == [
        f"bundle.yml:{line_of(tmp_path / 'bundle.yml', 'max_rows_per_reqest')}: serving_endpoints.fraud_endpoint.rollout.sla."
        f"max_rows_per_reqest: unknown key 'max_rows_per_reqest' in sla (did you mean 'max_rows_per_request'?)",
        f"bundle.yml:{line_of(tmp_path / 'bundle.yml', 'max_body_bytes: 10')}: serving_endpoints.fraud_endpoint.rollout.sla."
        f"max_body_bytes: Input should be greater than or equal to 1024"]


def test_conveyor_bundle_validate_fails_with_the_file_line(tmp_path):
    """Through the CLI: one line naming the file:line, non-zero exit."""
    text = DOC.replace("max_body_bytes: 262144", "max_body_bytes: lots")
    write(tmp_path, {"bundle.yml": text})
    proc = subprocess.run([sys.executable, "-c", "from bundles.cli import app; app()", "validate"], cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "CONVEYOR_PROJECT_DIR"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert (f"bundle.yml:{line_of(tmp_path / 'bundle.yml', 'max_body_bytes: lots')}: serving_endpoints.fraud_endpoint.rollout.sla."
            f"max_body_bytes: Input should be a valid integer") in proc.stderr
