"""The request limits travel from the bundle resource's `rollout.sla` to the endpoint's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.serving.endpoint_settings import load_endpoint_settings, rollout_problems, settings_from_resource
from ml.serving.errors import EndpointSettingsError

ROOT = Path(__file__).resolve().parents[2]
RESOURCE = {"model": "fraud-detector", "use_case": "fraud", "default": True,
            "served": [{"alias": "champion", "traffic_percentage": 100}],
            "rollout": {"strategy": "direct", "sla": {"p95_ms": 400, "max_rows_per_request": 50,
                                                      "max_body_bytes": 65536}}}


def test_the_limits_of_a_resource_become_the_endpoints_sla():
    s = settings_from_resource("fraud_endpoint", RESOURCE)
    assert (s.sla.max_rows_per_request, s.sla.max_body_bytes, s.sla.p95_ms) == (50, 65536, 400.0)
    assert s.rollout.strategy == "direct" and s.default is True and s.use_case == "fraud"


def test_limits_not_written_keep_their_defaults():
    s = settings_from_resource("fraud_endpoint", {**RESOURCE, "rollout": {"sla": {"p95_ms": 400}}})
    assert (s.sla.max_rows_per_request, s.sla.max_body_bytes) == (1000, 1_048_576)


@pytest.mark.parametrize(("sla", "field", "problem"), [
    ({"max_rows_per_request": 0}, "max_rows_per_request", "greater than or equal to 1"),
    ({"max_rows_per_request": 100_001}, "max_rows_per_request", "less than or equal to 100000"),
    ({"max_body_bytes": 100}, "max_body_bytes", "greater than or equal to 1024"),
    ({"max_body_bytes": "1MB"}, "max_body_bytes", "valid integer"),
])
def test_a_bad_limit_is_refused_naming_its_key(sla, field, problem):
    resource = {**RESOURCE, "rollout": {"strategy": "direct", "sla": sla}}
    with pytest.raises(EndpointSettingsError) as exc:
        settings_from_resource("fraud_endpoint", resource)
    assert str(exc.value).startswith(f"serving endpoint 'fraud_endpoint': rollout.sla.{field}: ")
    assert problem in str(exc.value)
    # what `conveyor bundle validate` reports, at the key's path in the resource
    [(path, msg)] = rollout_problems(resource)
    assert path == ("rollout", "sla", field) and problem in msg


@pytest.mark.parametrize(("file", "key"), [("endpoint.yml", "fraud_endpoint"), ("diabetes.yml", "diabetes_endpoint")])
def test_the_shipped_resources_set_the_limits_explicitly(file, key):
    """resources/endpoint.yml and resources/diabetes.yml write both limits, and they are what the endpoint gets."""
    path = ROOT / "resources" / file
    written = yaml.safe_load(path.read_text())["resources"]["serving_endpoints"][key]["rollout"]["sla"]
    got = load_endpoint_settings(path, key).sla
    assert (got.max_rows_per_request, got.max_body_bytes) == (written["max_rows_per_request"], written["max_body_bytes"])
    assert rollout_problems(yaml.safe_load(path.read_text())["resources"]["serving_endpoints"][key]) == []
