"""The endpoint over real HTTP: auth, schema errors are 4xx naming the field, predictions."""

from __future__ import annotations

import httpx
import pytest

from ml.serving import client
from ml.serving.endpoint_config import promote, update_config
from tests.serving.serving_helpers import TOKEN, served

pytestmark = pytest.mark.slow


def test_no_model_yet_is_a_clear_503_and_health_is_up(shared_endpoint, rows):
    # runs first in this module: nothing deployed yet
    assert httpx.get(shared_endpoint.url + "/livez").status_code == 200
    assert httpx.get(shared_endpoint.url + "/readyz").status_code == 200
    r = shared_endpoint.post(rows[:1])
    assert r.status_code == 503
    assert "no model is deployed" in r.json()["error"]


def test_token_required(shared_endpoint, rows):
    r = shared_endpoint.post(rows[:1], token=None)
    assert r.status_code == 401 and "bearer token" in r.json()["error"]
    r = shared_endpoint.post(rows[:1], token="wrong")
    assert r.status_code == 401 and "invalid" in r.json()["error"]


@pytest.fixture(scope="module")
def deployed(shared_endpoint, models):
    cfg = update_config(shared_endpoint.endpoint_dir, lambda c: promote(c, served(models["v1"], "1")),
                        by="test", reason="deploy v1")
    client.wait_for_revision(shared_endpoint.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)
    return shared_endpoint


def test_single_row_and_batch(deployed, rows):
    one = deployed.post(rows[:1])
    assert one.status_code == 200, one.text
    [pred] = one.json()
    assert pred["transaction_id"] == rows[0]["transaction_id"]
    assert pred["model_version"] == "1" and pred["served_by"] == "champion"
    assert 0.0 <= pred["fraud_probability"] <= 1.0
    many = deployed.post(rows[:50])
    assert many.status_code == 200
    assert [p["transaction_id"] for p in many.json()] == [r["transaction_id"] for r in rows[:50]]


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.pop("amount"), "rows[0].amount"),
    (lambda r: r.update(amount="12.5"), "rows[0].amount"),
    (lambda r: r.update(card_present="yes"), "rows[0].card_present"),
    (lambda r: r.update(coupon_code="X"), "rows[0].coupon_code"),
    (lambda r: r.update(home_lat=123.0), "rows[0].home_lat"),
    (lambda r: r.update(timestamp="not a time"), "rows[0].timestamp"),
])
def test_bad_rows_are_4xx_naming_the_field(deployed, rows, mutate, field):
    row = dict(rows[0])
    mutate(row)
    r = deployed.post([row])
    assert 400 <= r.status_code < 500, r.text
    assert field in r.json()["error"]


def test_malformed_bodies_are_4xx(deployed):
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    for body in (b"{not json", b"[]", b'{"rows": 5}', b'{"rows": [1]}'):
        r = httpx.post(deployed.url + "/predict", content=body, headers=headers)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)


def test_on_demand_distance_is_logged_with_each_request(deployed, rows):
    import time

    from ml.serving.inference_log import read_table
    from usecases.fraud.features import compute_distance

    row = dict(rows[5], transaction_id="distance-check")
    assert deployed.post([row]).status_code == 200
    for _ in range(50):
        table = read_table(deployed.table_dir)
        hit = table[table["request_id"] == "distance-check"] if len(table) else table
        if len(hit):
            break
        time.sleep(0.1)
    rec = hit.iloc[0]
    expected = compute_distance(row["home_lat"], row["home_lon"], row["txn_lat"], row["txn_lon"])
    assert rec["f_distance_from_home_km"] == pytest.approx(float(expected), abs=1e-3)
    assert rec["model_version"] == "1" and rec["served_by"] == "champion" and rec["latency_ms"] > 0


def test_metrics_are_prometheus(deployed, rows):
    deployed.post(rows[:3])
    text = httpx.get(deployed.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "conveyor_predictions_total" in text and 'served_by="champion"' in text
    # the predict routes answer in front of BentoML's middleware: their own series count them by status
    answered = [line for line in text.splitlines() if line.startswith("conveyor_requests_total{")
                and 'status="200"' in line and 'target="traffic"' in line and 'endpoint="default"' in line]
    assert answered and float(answered[0].rsplit(" ", 1)[1]) >= 1, text[-2000:]
    assert "conveyor_request_duration_seconds_bucket{" in text


def test_timestamps_with_and_without_offset_in_one_batch(deployed, rows):
    batch = [dict(rows[0], timestamp="2026-01-05T10:00:00Z"), dict(rows[1], timestamp="2026-01-05T10:00:00+02:00"),
             dict(rows[2])]
    r = deployed.post(batch)
    assert r.status_code == 200, r.text
    assert len(r.json()) == 3
