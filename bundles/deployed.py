"""Read what bundles deployed into an environment — for the serving layer, monitors and tasks.

Serving endpoints and monitors are declared in `resources/*.yml` and resolved per target
at deploy time (names prefixed, `${...}` interpolated, target overrides applied, checked
against the kind's model); code that acts on them reads these deployed specs, never the
raw YAML of a checkout. Inside a job run, `task_specs` / `task_spec` read the specs of the
run's own deployment ($CONVEYOR_DEPLOYMENT, set by the runner), so a task acts on exactly
what was deployed with the code it runs.
"""

from __future__ import annotations

from bundles.envstore import DeploymentStore, all_deployments, deploy_command
from bundles.errors import BundleError
from core import settings
from core.contract import EnvironmentOutputs
from core.errors import did_you_mean


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


def task_specs(kind: str) -> dict[str, dict]:
    """Inside a job run: `{key: spec}` of one kind as deployed with the run's deployment.

    BundleError (one line saying what to do) outside a bundle run — there is no deployment to
    read then — and when the deployment is no longer in the env."""
    from core import runtime

    deployment = settings.DEPLOYMENT.get()
    if not deployment:
        raise BundleError(f"not inside a bundle run ({settings.DEPLOYMENT.name} is not set): there is no deployment "
                          f"to read {kind} from; run the job with `conveyor bundle run`")
    ctx = runtime.context()
    store = DeploymentStore(ctx.outputs, deployment)
    if not store.exists():
        raise BundleError(f"deployment {deployment} is no longer in env {ctx.env!r}; redeploy with {deploy_command(deployment)}")
    return {key: doc["spec"] for key, doc in store.objects(kind).items() if "spec" in doc}


def task_spec(kind: str, key: str) -> dict:
    """Inside a job task: the deployed, resolved spec of one resource of this deployment
    (e.g. `task_spec("serving_endpoints", "fraud_endpoint")`); without a deployment
    (a task started by hand), of any deployment in the env."""
    from core import runtime

    deployment = settings.DEPLOYMENT.get()
    if deployment:
        specs, where = task_specs(kind), f"deployment {deployment}"
    else:
        ctx = runtime.context()
        specs, where = deployed_specs(ctx.outputs, kind), f"env {ctx.env}"
    if key not in specs:
        fix = f"; declare it and redeploy with {deploy_command(deployment)}" if deployment else ""
        raise BundleError(f"no deployed {kind} {key!r} in {where}{did_you_mean(key, specs)} "
                          f"(deployed: {', '.join(specs) or 'none'}){fix}")
    return specs[key]
