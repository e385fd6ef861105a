"""Step: each serving endpoint's `rollout` mapping is what the serving layer will accept.

Reads `resources.serving_endpoints` of the final document (targets merged, variables
interpolated); changes nothing. The bundle's model leaves `rollout` a free mapping because
its settings are the serving layer's (`ml.serving.endpoint_settings`: strategy, stages,
guard, and `sla`: the pre-traffic gate and the request limits `max_rows_per_request`,
`max_body_bytes`). Checking it here turns a bad value into an error at its file:line at
`validate` time, instead of a failed `update_endpoint` task after the deploy.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic

KIND = "serving_endpoints"


def apply(state: LoadState) -> list[Diagnostic]:
    endpoints = state.resources.get(KIND)
    if not isinstance(endpoints, dict):
        return []
    from ml.serving.endpoint_settings import rollout_problems  # the serving layer owns these settings

    out: list[Diagnostic] = []
    for key, spec in endpoints.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("rollout") or {}, dict):
            continue  # validate_schema reported the wrong shape
        for path, problem in rollout_problems(spec):
            dotted = ".".join(str(p) for p in path)
            out.append(Diagnostic("error", f"serving_endpoints.{key}.{dotted}: {problem}",
                                  state.doc.loc(("resources", KIND, key, *path))))
    return out
