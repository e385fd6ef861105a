"""The resource kinds a bundle deploys, one module each, registered here once.

`KINDS` is the one list: its order is the apply order (deletes run in reverse), its
declared kinds are the fields of `resources:` in `bundle.yml` (`bundles.models.Resources`),
the kinds whose entries get a final (development-prefixed) name (`NAMED_KINDS`), and what
the planner and the engine dispatch on. To add a kind, see README.md in this folder.
"""

from __future__ import annotations

from bundles.resources.artifact import Artifact
from bundles.resources.base import DeployContext, Registry, ResourceKind
from bundles.resources.experiments import Experiments
from bundles.resources.feature_tables import FeatureTables
from bundles.resources.jobs import Jobs
from bundles.resources.monitors import Monitors
from bundles.resources.registered_models import RegisteredModels
from bundles.resources.serving_endpoints import ServingEndpoints

KINDS = Registry([
    Artifact(),          # the code wheel: first, every job runs it
    Experiments(),       # MLflow objects next: jobs log to them
    RegisteredModels(),
    Jobs(),
    FeatureTables(),     # after the jobs that refresh them; before the endpoints that look them up
    ServingEndpoints(),  # serve models the jobs register
    Monitors(),          # watch endpoints, trigger jobs
])

# Kinds declared under `resources:`; every entry of these has a final `name`. A live view
# of the registry, so a module may import it before a kind is registered.
NAMED_KINDS = KINDS.declared_view()

__all__ = ["KINDS", "NAMED_KINDS", "DeployContext", "Registry", "ResourceKind"]
