"""Read what bundles deployed into an environment — for the serving layer, monitors and tasks.

Serving endpoints and monitors are declared in `resources/*.yml` and resolved per target
at deploy time (names prefixed, variables applied); code that acts on them should read
these deployed specs rather than the raw YAML.
"""

from __future__ import annotations

from bundles.envstore import DeploymentStore, all_deployments
from core import settings
from core.contract import EnvironmentOutputs


def deployed_specs(outputs: EnvironmentOutputs, kind: str, deployment: str | None = None) -> dict[str, dict]:
    """`{key: spec}` of one kind ("jobs", "serving_endpoints", "monitors") in the env.

    `deployment` limits it to one deployment (inside a task: $CONVEYOR_DEPLOYMENT);
    otherwise every deployment in the env contributes (later ones win on equal keys).
    """
    deployment = deployment or settings.DEPLOYMENT.get()
    out: dict[str, dict] = {}
    for dep in all_deployments(outputs):
        if deployment and dep != deployment:
            continue
        for key, doc in DeploymentStore(outputs, dep).objects(kind).items():
            if "spec" in doc:
                out[key] = doc["spec"]
    return out


def task_spec(kind: str, key: str) -> dict:
    """Inside a job task: the deployed, resolved spec of one resource of this deployment
    (e.g. `task_spec("serving_endpoints", "fraud_endpoint")`)."""
    from core import runtime

    ctx = runtime.context()
    deployment = settings.DEPLOYMENT.get()
    specs = deployed_specs(ctx.outputs, kind, deployment)
    if key not in specs:
        where = f"deployment {deployment}" if deployment else f"env {ctx.env}"
        raise KeyError(f"no deployed {kind} {key!r} in {where} (deployed: {', '.join(specs) or 'none'})")
    return specs[key]
