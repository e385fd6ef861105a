"""A production env does not start empty: deploy runs an endpoint's `bootstrap_job` while it serves nothing.

An endpoint declares the job that trains, validates and rolls out its model
(`serving_endpoints.<key>.bootstrap_job`, e.g. `model_training_job`). After a deploy to a
production-mode target (the release path: CI's `conveyor bundle deploy -t prod`), every
such endpoint that serves no model yet gets its job run once, through the env's job backend,
and the deploy waits for it: when it returns, the endpoint serves a validated model, or the
deploy fails saying which job failed (and the next deploy tries again). Development targets
never bootstrap: a data scientist runs jobs by hand there; `bootstrap: false` (a per-target
variable in this repository: on in prod only, staging's CI trains by itself) turns it off.

"Serves no model" is read from the endpoint's config in env storage (`endpoint.json` without
a champion). Where deploy cannot read it (object storage: the kubernetes platform keeps it on
the serving volume), the job runs when the endpoint is created by this deploy.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from bundles.backends import JobBackend
from bundles.errors import BundleError
from bundles.loader import ResolvedBundle
from bundles.planner import Plan
from core.contract import EnvironmentOutputs
from core.endpoints import CONFIG_FILE, config_dir


def serves_a_model(outputs: EnvironmentOutputs, key: str, default: bool) -> bool | None:
    """Whether endpoint `key` has a champion; None when this machine cannot see its config."""
    from core.runtime import RuntimeContextError, local_storage_path

    try:
        root = local_storage_path(outputs, "endpoint")
    except (RuntimeContextError, AttributeError):
        return None
    path = (root if default else config_dir(root, key)) / CONFIG_FILE
    try:
        return json.loads(path.read_text()).get("champion") is not None
    except FileNotFoundError:
        return False
    except ValueError:
        return None


def needed(bundle: ResolvedBundle, outputs: EnvironmentOutputs, plan: Plan) -> dict[str, list[str]]:
    """{job: [endpoints it bootstraps]} for the endpoints of a production target that serve nothing."""
    if bundle.mode != "production":
        return {}
    created = {a.key for a in plan.actions if a.action == "create"}
    jobs: dict[str, list[str]] = {}
    for key, entry in (getattr(bundle.resources, "serving_endpoints", None) or {}).items():
        if not entry.bootstrap_job or not entry.bootstrap:
            continue
        serving = serves_a_model(outputs, key, entry.default)
        if serving is False or (serving is None and f"serving_endpoints.{key}" in created):
            jobs.setdefault(entry.bootstrap_job, []).append(key)
    return jobs


def bootstrap(bundle: ResolvedBundle, outputs: EnvironmentOutputs, plan: Plan, jobs: JobBackend,
              echo: Callable[[str], None] = print) -> list[str]:
    """Run the bootstrap job of each empty endpoint (once per job); returns the run ids."""
    runs = []
    for job, endpoints in needed(bundle, outputs, plan).items():
        echo(f"bootstrap: {', '.join(endpoints)} of {outputs.env} serves no model yet: running job {job}")
        run = jobs.start(job)
        result = run.wait()
        if not result.ok:
            detail = "; ".join(f"{f.task}: {f.reason}" for f in result.failures) or result.error
            raise BundleError(f"bootstrap job {job} failed ({detail}): {', '.join(endpoints)} serves no model yet. "
                              f"Fix it and deploy again, or run `conveyor bundle run {job} -t {bundle.target}`")
        echo(f"bootstrap: job {job} run {result.run_id} succeeded")
        runs.append(result.run_id)
    return runs
