"""The OpenAPI document of one endpoint: what its routes accept and every answer they give.

Served by the gate at `/docs.json` and `/openapi.json` (the default endpoint) and
`/<name>/openapi.json` (a named one), built from the endpoint's `ServingSchema` and its
current limits (named in the `rows` description and the 413 answer). Every status the
routes answer is documented with its body: 200 (one answer per row; `[]` for an empty
batch), 401 (token), 413 (a limit, named), 422 (the fields, named), 503 (nothing loaded, or
shedding load; with Retry-After). `tests/serving/test_fuzz.py` runs schemathesis over it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from ml.serving.endpoint_config import SLA
from ml.serving.schema import ServingSchema

REF = "#/components/schemas/{model}"


class FieldProblem(BaseModel):
    field: str = Field(description="where, e.g. rows[0].amount")
    problem: str


class Problem(BaseModel):
    """Every error answer: `error` says what is wrong and what to do."""

    error: str
    fields: list[FieldProblem] | None = Field(None, description="422: each bad field")
    limit: str | None = Field(None, description="413: the limit crossed (sla.max_rows_per_request, sla.max_body_bytes)")
    maximum: int | None = Field(None, description="413: its value")
    revision: int | None = Field(None, description="503: the endpoint config revision served")


def _error(description: str, headers: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": {"$ref": REF.format(model="Problem")}}}}
    if headers:
        out["headers"] = headers
    return out


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
UNAUTHORIZED = _error("no or invalid bearer token")
STATUS = {"type": "object", "description": "what this worker serves: revision, model versions, rollout state",
          "properties": {"revision": {"type": "integer"}, "models": {"type": "object"}}, "required": ["revision"]}


def document(schema: ServingSchema, *, prefix: str = "", title: str, version: str, sla: SLA | None = None,
             default: bool = False) -> dict:
    """The OpenAPI 3.1 document of the endpoint whose routes start with `prefix` ('' or '/<name>')."""
    sla = sla or SLA()
    _, defs = models_json_schema([(schema.body, "validation"), (schema.response, "serialization"),
                                  (Problem, "serialization")], ref_template=REF)
    components = defs.get("$defs", {})
    body_name = schema.body.__name__
    # the row limit is said in words, not as `maxItems`: over it is a 413 naming the limit, not a 422
    rows = components[body_name]["properties"]["rows"]
    rows["description"] = f"{rows.get('description', 'rows')}; at most {sla.max_rows_per_request} per request"
    answers = {"type": "array", "items": {"$ref": REF.format(model=schema.response.__name__)}}
    uc = schema.use_case.name
    paths: dict[str, Any] = {}
    for route, what in (("predict", f"Score {uc} rows (requests arriving together are batched)."),
                        ("candidate/predict", f"Score {uc} rows with the staged candidate only.")):
        paths[f"{prefix}/{route}"] = {"post": {
            "summary": what, "operationId": f"{prefix.strip('/') or 'default'}:{route}",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF.format(model=body_name)}}}},
            "responses": {
                "200": {"description": "one answer per row, in order ([] for no rows)",
                        "content": {"application/json": {"schema": answers}}},
                "401": UNAUTHORIZED,
                "413": _error(f"over a limit: at most {sla.max_rows_per_request} rows and "
                              f"{sla.max_body_bytes} bytes per request"),
                "422": _error("the body is not JSON of this schema; names each bad field"),
                "503": _error("no model loaded yet, or the endpoint is at capacity", RETRY_AFTER),
            }}}
    paths[f"{prefix}/status"] = {"get": {
        "summary": "What this worker serves", "operationId": f"{prefix.strip('/') or 'default'}:status",
        "responses": {"200": {"description": "status", "content": {"application/json": {"schema": STATUS}}},
                      "401": UNAUTHORIZED}}}
    if default:
        paths["/metrics"] = {"get": {
            "summary": "Prometheus metrics of this worker", "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {
                "type": "string"}}}}, "401": UNAUTHORIZED}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": schema.use_case.spec.description or uc},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"serving_token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"serving_token": []}],
    }
