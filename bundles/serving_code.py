"""The deploy step that ships serving code: the env's endpoint runs the deployment's code wheel.

A bundle that declares `serving_endpoints` owns the code its env's endpoint runs. After the
code artifact is deployed, `ship` asks the env's launcher to run that wheel
(`core.serving_code`) and waits until it does: the launcher starts the new code next to the
old, hands traffic over once it is ready and drains the old (no failed request). If the new
code does not start, the launcher keeps the old code serving, `ship` puts the previous request
back (so a restarted launcher does not retry the broken code) and raises with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bundles.envstore import DeploymentState, bundle_blobs
from bundles.errors import BundleError
from bundles.loader import ResolvedBundle
from core.contract import EnvironmentOutputs
from core.serving_code import (
    REQUEST, CodeRequest, ServingCodeError, all_serve, launchers, read_request, request_code, wait_for_rollout,
)

ROLLOUT_TIMEOUT_S = 600.0


def owns_serving(bundle: ResolvedBundle) -> bool:
    """Only a bundle with serving endpoints decides the env endpoint's code."""
    return bool(getattr(bundle.resources, "serving_endpoints", None))


def ship(bundle: ResolvedBundle, outputs: EnvironmentOutputs, state: DeploymentState, *,
         echo: Callable[[str], None] = print, timeout_s: float = ROLLOUT_TIMEOUT_S) -> bool:
    """Roll the env's endpoint onto `state`'s code artifact; True when a rollout was requested.

    Raises BundleError (the launcher's reason) when the code does not start; the previous code
    keeps serving and stays the requested one."""
    if not owns_serving(bundle) or not state.artifact or not state.wheel:
        return False
    blobs = bundle_blobs(outputs)
    previous = read_request(blobs)
    live = launchers(blobs)
    if previous is not None and previous.artifact == state.artifact and live and all_serve(live, state.artifact):
        return False  # already serving this code
    deployment = bundle.deployment_id()
    request = CodeRequest(artifact=state.artifact, deployment=deployment, git_sha=bundle.git.commit or "unknown",
                          wheel=f"deployments/{deployment}/artifacts/{state.artifact[:16]}/{state.wheel}",
                          requested_at=time.time(), requested_by=bundle.user)
    request_code(blobs, request)
    try:
        served = wait_for_rollout(blobs, request, timeout_s=timeout_s, echo=echo)
    except ServingCodeError as exc:
        if previous is not None:
            request_code(blobs, previous)
        else:
            blobs.delete(REQUEST)
        raise BundleError(str(exc)) from None
    if served:
        drained = f"; code {previous.short} drained and stopped" if previous and previous.artifact != request.artifact else ""
        echo(f"endpoint: serving code {request.short} ({served[0].bento}){drained}")
    else:
        echo(f"endpoint: no launcher is running in {outputs.env}; it starts on code {request.short} when it comes up")
    return True
