"""Request/response models derived from a use case's declaration, and the endpoint bindings (no servers)."""

from __future__ import annotations

import textwrap

from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from ml.serving import endpoints, openapi
from ml.serving.endpoint_config import EndpointConfig
from ml.serving.predict import PredictRoute
from ml.serving.schema import ServingSchema, for_use_case
from ml.usecase import load_use_case

TINY = """
name: tiny
task: regression
dataset:
  id: house_id
  entity_key: street
  label: price
  columns:
    house_id: {type: string}
    street: {type: string}
    rooms: {type: int, min: 1, max: 12}
    area_m2: {type: float, min: 0, strict_min: true, max: 1000}
    kind: {type: category, values: [flat, house]}
    garden: {type: bool, nullable: true}
    price: {type: float, min: 0}
source: {kind: file, path: data/tiny.csv}
features:
  function: usecases.tiny.features:build_features
  request: [rooms, area_m2, kind, garden]
  columns:
    rooms: {type: int}
    area_m2: {type: float}
model: {factory: "usecases.tiny.model:build"}
"""


@pytest.fixture
def tiny(tmp_path) -> ServingSchema:
    folder = tmp_path / "usecases" / "tiny"
    folder.mkdir(parents=True)
    (folder / "usecase.yml").write_text(textwrap.dedent(TINY))
    return ServingSchema.of(load_use_case("tiny", root=tmp_path))


def _app(schema: ServingSchema) -> TestClient:
    """The endpoint's predict route (limits, validation, batching) over a stand-in engine."""
    engine = SimpleNamespace(name="tiny", snapshot=SimpleNamespace(config=EndpointConfig()),
                             score=lambda rows, target: [schema.answer(r["house_id"] or "generated", 123.0, 0.5, "1",
                                                                       "champion") for r in rows])
    route = PredictRoute(engine, schema, budget_ms=1000)

    async def app(scope, receive, send):
        await route(scope, receive, send, "traffic")

    return TestClient(app)


ROW = {"street": "Elm", "rooms": 3, "area_m2": 70.5, "kind": "flat", "garden": None}


def test_regression_request_model_and_its_openapi(tiny):
    assert tiny.columns == ["house_id", "street", "rooms", "area_m2", "kind", "garden"]
    assert list(tiny.response.model_fields) == ["house_id", "price", "model_version", "served_by"]
    api = openapi.document(tiny, prefix="/tiny", title="tiny", version="1")
    props = api["components"]["schemas"]["TinyRequest"]["properties"]
    assert props["rooms"]["type"] == "integer" and (props["rooms"]["minimum"], props["rooms"]["maximum"]) == (1, 12)
    assert props["area_m2"]["exclusiveMinimum"] == 0 and props["area_m2"]["maximum"] == 1000
    assert props["kind"]["enum"] == ["flat", "house"]
    assert {"type": "null"} in props["garden"]["anyOf"]
    required = api["components"]["schemas"]["TinyRequest"]["required"]
    assert set(required) == {"street", "rooms", "area_m2", "kind"}  # id optional, nullable column optional
    answer = api["components"]["schemas"]["TinyPrediction"]["properties"]
    assert answer["price"]["type"] == "number"
    body = api["paths"]["/tiny/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("TinyPredictBody")


def test_regression_request_refuses_out_of_range_and_unknown_values(tiny):
    client = _app(tiny)
    ok = client.post("/tiny/predict", json={"rows": [ROW]})
    assert ok.status_code == 200 and ok.json() == [{"house_id": "generated", "price": 123.0, "model_version": "1",
                                                     "served_by": "champion"}]
    for bad, field in [({"rooms": 13}, "rooms"), ({"area_m2": 0}, "area_m2"), ({"kind": "castle"}, "kind"),
                       ({"rooms": "3"}, "rooms"), ({"pool": True}, "pool")]:
        r = client.post("/tiny/predict", json={"rows": [{**ROW, **bad}]})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["fields"][0]["field"] == f"rows[0].{field}"


def test_fraud_schema_keeps_the_fields_of_its_requests_and_answers():
    fraud = for_use_case("fraud")
    assert fraud.columns == ["transaction_id", "customer_id", "timestamp", "amount", "merchant_category", "card_present",
                             "home_lat", "home_lon", "txn_lat", "txn_lon"]
    assert list(fraud.response.model_fields) == ["transaction_id", "is_fraud", "fraud_probability", "model_version",
                                                 "served_by"]
    assert fraud.answer("t1", 0.7, 0.5, "3", "champion") == {
        "transaction_id": "t1", "is_fraud": True, "fraud_probability": 0.7, "model_version": "3", "served_by": "champion"}


def test_bindings_name_the_endpoints_of_an_env(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVEYOR_SERVING_USE_CASE", raising=False)
    assert endpoints.default_binding(tmp_path).use_case == "fraud"
    endpoints.write_binding(tmp_path, endpoints.Binding(name="diabetes_endpoint", use_case="diabetes"))
    assert list(endpoints.named_bindings(tmp_path)) == ["diabetes_endpoint"]
    binding, directory = endpoints.resolve(tmp_path, "diabetes_endpoint")
    assert binding.use_case == "diabetes" and directory == tmp_path / "diabetes_endpoint"
    assert endpoints.resolve(tmp_path, None)[1] == tmp_path
    with pytest.raises(endpoints.UnknownEndpoint, match="did you mean 'diabetes_endpoint'"):
        endpoints.resolve(tmp_path, "diabetes_endpont")
    with pytest.raises(endpoints.InvalidEndpointName, match="invalid endpoint name"):
        endpoints.Binding(name="models", use_case="fraud")
