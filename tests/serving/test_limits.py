"""Limits that say so, and bounded fields: the predict route and the schema, in-process (no server)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from ml.serving.endpoint_config import SLA, EndpointConfig
from ml.serving.predict import PredictRoute
from ml.serving.schema import for_use_case

FRAUD = for_use_case("fraud")
ROW = {"customer_id": "c-1", "timestamp": "2026-03-01T12:00:00", "amount": 12.5, "merchant_category": "grocery",
       "card_present": True, "home_lat": 48.1, "home_lon": 11.5, "txn_lat": 48.2, "txn_lon": 11.6}


def _client(sla: SLA | None = None, schema=FRAUD) -> tuple[TestClient, list]:
    """The fraud endpoint's route over a stand-in engine that records what reaches the features."""
    scored: list = []

    def score(rows, target):
        scored.extend(rows)
        return [schema.answer(f"id-{i}", 0.25, 0.5, "1", "champion") for i, _ in enumerate(rows)]

    engine = SimpleNamespace(name=None, snapshot=SimpleNamespace(config=EndpointConfig(sla=sla or SLA())), score=score)
    route = PredictRoute(engine, schema, budget_ms=1000)

    async def app(scope, receive, send):
        await route(scope, receive, send, "traffic")

    return TestClient(app), scored


def _post(c: TestClient, content: bytes):
    return c.post("/predict", content=content, headers={"content-type": "application/json"})


def test_rows_and_bytes_over_the_endpoint_limits_are_413_naming_the_limit():
    c, scored = _client(SLA(max_rows_per_request=5, max_body_bytes=4096))
    r = c.post("/predict", json={"rows": [ROW] * 6})
    assert r.status_code == 413
    assert r.json()["limit"] == "sla.max_rows_per_request" and r.json()["maximum"] == 5
    assert "6 rows" in r.json()["error"]
    r = c.post("/predict", json={"rows": [ROW] * 40})
    assert r.status_code == 413 and r.json()["limit"] == "sla.max_body_bytes" and r.json()["maximum"] == 4096
    assert c.post("/predict", json={"rows": [ROW] * 5}).status_code == 200
    assert len(scored) == 5


def test_an_empty_batch_is_an_empty_answer():
    c, scored = _client()
    r = c.post("/predict", json={"rows": []})
    assert r.status_code == 200 and r.json() == [] and scored == []


@pytest.mark.parametrize("field, raw, problem", [
    ("amount", b"NaN", "finite number"),
    ("amount", b"Infinity", "finite number"),
    ("amount", b"1e308", "less than or equal to 100000"),
    ("home_lat", b"-1e300", "greater than or equal to -90"),
    ("timestamp", b'"9999-12-31T23:59:59"', "from 1900 to 2199"),
    ("timestamp", b'"1000-01-01T00:00:00+05:00"', "from 1900 to 2199"),
    ("timestamp", b'"2026-02-30T00:00:00"', "ISO 8601 time string"),
    ("timestamp", b'"2023-02-29T00:00:00"', "ISO 8601 time string"),  # not a leap year
    ("timestamp", b"253402300799", "ISO 8601 time string"),
    ("timestamp", b'"2026-03-01"', "ISO 8601 time string"),
    ("card_present", b'"yes"', "valid boolean"),
    ("merchant_category", b'"castle"', "Input should be"),
])
def test_values_that_would_break_feature_code_are_422_naming_the_field(field, raw, problem):
    c, scored = _client()
    body = json.dumps({"rows": [{**ROW, field: "__X__"}]}).encode().replace(b'"__X__"', raw)
    r = _post(c, body)
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == f"rows[0].{field}" and problem in r.json()["error"], r.text
    assert scored == []  # nothing reached the features


def test_not_json_and_wrong_shapes_are_422():
    c, _ = _client()
    for body in (b"{not json", b"[]", b'{"rows": 5}', b'{"rows": [1]}', b"", b'{"rows": [], "x": 1}'):
        assert _post(c, body).status_code == 422, body


def test_unbounded_columns_get_a_magnitude_bound_and_times_lose_their_offset():
    from ml.serving.schema import INT_MAGNITUDE, MAGNITUDE, _annotation
    from ml.usecase.contract import Column

    assert _annotation(Column(type="float"))[1] | {"description": None} == {
        "description": None, "allow_inf_nan": False, "ge": -MAGNITUDE, "le": MAGNITUDE}
    assert _annotation(Column(type="int", min=0))[1]["le"] == INT_MAGNITUDE
    props = FRAUD.request.model_json_schema()["properties"]
    assert (props["home_lat"]["minimum"], props["home_lat"]["maximum"]) == (-90.0, 90.0)  # declared: kept
    c, scored = _client()
    assert c.post("/predict", json={"rows": [{**ROW, "timestamp": "2026-03-01T12:00:00+02:00"}]}).status_code == 200
    assert scored[0]["timestamp"].tzinfo is None and scored[0]["timestamp"].hour == 12
