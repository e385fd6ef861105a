"""Schemathesis over every operation of every endpoint's own OpenAPI, against a real `bentoml serve`.

One serving process with the default endpoint (fraud, `/docs.json`) and a named one
(diabetes, `/diabetes_endpoint/openapi.json`), each with a champion and a staged candidate.
Both phases that generate requests run — coverage (boundary and negative values of every
field) and fuzzing (random valid and invalid bodies) — with every check schemathesis has:
no server error, only documented status codes, bodies and content types as documented,
invalid input rejected with a 4xx, auth enforced, unsupported methods 405. Bounded: a fixed
seed and a few dozen fuzzed examples per operation (about a minute on 2 shared cores).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml.serving import client, endpoints
from ml.serving.endpoint_config import update_config
from tests.serving.serving_helpers import TOKEN, served, start_endpoint
from tests.serving.test_multi_endpoint import _train_diabetes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NAME = "diabetes_endpoint"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _serve(cfg, model):
    cfg.champion, cfg.candidate, cfg.state = model, model, "serving"
    return cfg


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, models):
    base = tmp_path_factory.mktemp("fuzz")
    ep = start_endpoint(base)
    named_dir = endpoints.write_binding(ep.endpoint_dir, endpoints.Binding(name=NAME, use_case="diabetes",
                                                                             model="diabetes-progression"))
    diabetes = served(_train_diabetes(base / "diabetes-model"), "7", name="diabetes-progression")
    fraud = update_config(ep.endpoint_dir, lambda c: _serve(c, served(models["v1"], "1")), by="test", reason="fuzz")
    named = update_config(named_dir, lambda c: _serve(c, diabetes), by="test", reason="fuzz")
    client.wait_for_revision(ep.url, fraud.revision, timeout_s=60, confirmations=1, token=TOKEN)
    client.wait_for_revision(ep.url, named.revision, timeout_s=60, confirmations=1, endpoint=NAME, token=TOKEN)
    yield ep
    ep.stop()


def schemathesis_run(url: str, document: str, *, examples: int = 30) -> subprocess.CompletedProcess:
    """`schemathesis run` of one OpenAPI document: coverage + fuzzing phases, every check, a fixed seed."""
    return subprocess.run(
        [str(SCHEMATHESIS), "run", url + document, "--url", url, "--phases", "coverage,fuzzing", "--checks", "all",
         "--header", f"Authorization: Bearer {TOKEN}", "--max-examples", str(examples), "--seed", "17",
         "--workers", "1", "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("document", ["/docs.json", f"/{NAME}/openapi.json"], ids=["default", NAME])
def test_every_operation_answers_every_input_as_documented(fuzzed, document):
    run = schemathesis_run(fuzzed.url, document)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # and it did test something: "No issues found" alone is also what a run that checked nothing prints
    assert re.search(r"\b[1-9]\d* passed\b", run.stdout), run.stdout[-3000:]


def test_the_requests_of_issue_17_are_answered_with_a_reason(fuzzed, rows):
    """The hand-made requests that used to be 500/503: each is a 4xx naming why, or an answer."""
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    row = dict(rows[0])
    empty = fuzzed.post([])
    assert empty.status_code == 200 and empty.json() == []
    far = fuzzed.post([{**row, "timestamp": "9999-12-31T23:59:59"}])
    assert far.status_code == 422 and "rows[0].timestamp" in far.json()["error"]
    nan = httpx.post(fuzzed.url + "/predict", headers={**auth, "content-type": "application/json"},
                     content=b'{"rows": [%s]}' % httpx.Request("POST", "/", json={**row, "amount": 0}).content
                     .replace(b'"amount":0', b'"amount":NaN').replace(b'"amount": 0', b'"amount": NaN'))
    assert nan.status_code == 422 and "finite number" in nan.json()["error"], nan.text
    many = fuzzed.post([row] * 10_000)
    assert many.status_code == 413 and "sla.max_body_bytes" in many.json()["error"]
    rows_limit = fuzzed.post([row] * 1001)  # under the body limit, over the row limit
    assert rows_limit.status_code == 413 and rows_limit.json()["limit"] == "sla.max_rows_per_request"
    trace = httpx.request("TRACE", fuzzed.url + "/candidate/predict", headers=auth)
    assert trace.status_code == 405 and trace.headers["allow"] == "POST"
    for path in ("/status", "/metrics", f"/{NAME}/status"):
        assert httpx.get(fuzzed.url + path).status_code == 401, path
        assert httpx.get(fuzzed.url + path, headers=auth).status_code == 200, path
    documented = httpx.get(fuzzed.url + "/docs.json").json()["paths"]["/predict"]["post"]["responses"]
    assert {"200", "401", "413", "422", "503"} <= set(documented)
