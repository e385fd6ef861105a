"""`resources.feature_tables`: entity-keyed, time-stamped aggregates computed by a refresh job,
versioned offline (DVC) and looked up online (docs/feature-tables.md).

Deploy writes the resolved definition into the env's storage (`core.feature_tables`), where
the refresh job, training and the serving process read it; the deployment keeps its usual
document too (`StoredKind`). `bundle validate` checks each entry on its own (windows, ttl,
cron, aggregations) and against its source use case's declared columns in the bundle being
loaded (the loader passes its root as validation context `root`; an unknown entity key or column
is an error at the entry); `plan` checks that the refresh job exists and has the table's schedule.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo, model_validator

from bundles.errors import BundleError
from bundles.resources.base import DeployContext
from bundles.resources.stored import StoredKind, resource_key
from core.feature_tables import FeatureTableSpec, column_problems, definition_key, dump_definition

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord


def declared_columns(use_case: str, root: Path | None = None) -> dict[str, str] | None:
    """`{column: type}` of a use case's `dataset.columns` read from its usecase.yml (nothing is
    imported); None when the project has no such use case folder to read."""
    import yaml

    from core.paths import project_dir

    path = (root or project_dir()) / "usecases" / use_case / "usecase.yml"
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        cols = (doc.get("dataset") or {}).get("columns") or {}
        return {name: (c or {}).get("type", "") for name, c in cols.items()}
    except (yaml.YAMLError, AttributeError):
        return None  # `bundle validate` reports the broken use case itself


class FeatureTable(FeatureTableSpec):
    @model_validator(mode="after")
    def _source_columns(self, info: ValidationInfo) -> FeatureTable:
        from core.paths import project_dir

        root = Path((info.context or {}).get("root") or project_dir())  # the bundle's, when the loader validates
        columns = declared_columns(self.source.use_case, root)
        if columns is None:
            if (root / "usecases").is_dir():
                raise ValueError(f"source.use_case: unknown use case {self.source.use_case!r} (no usecases/"
                                 f"{self.source.use_case}/usecase.yml)")
            return self
        problems = column_problems(self, columns)
        if problems:
            raise ValueError("; ".join(f"{'.'.join(map(str, path))}: {msg}" for path, msg in problems))
        return self


class FeatureTables(StoredKind):
    """The definition lives in env storage; the refresh job (a `jobs` entry) computes the data."""

    name = "feature_tables"
    model = FeatureTable

    def check(self, ctx: DeployContext, key: str, spec: dict[str, Any]) -> None:
        table = FeatureTableSpec.model_validate(spec)
        jobs = getattr(ctx.bundle.resources, "jobs", {}) or {}
        if table.refresh_job and table.refresh_job not in jobs:
            raise BundleError(f"{key}: refresh_job {table.refresh_job!r} is not a job of this bundle "
                              f"(jobs: {', '.join(jobs) or 'none'})")
        job = jobs.get(table.refresh_job) if table.refresh_job else None
        cron = getattr(getattr(job, "schedule", None), "cron", None)
        if job is not None and table.schedule and cron != table.schedule:
            raise BundleError(f"{key}: schedule {table.schedule!r} is not its refresh job's ({table.refresh_job}: "
                              f"{cron!r}); the job's schedule is what runs")

    def put(self, ctx: DeployContext, action, old) -> ResourceRecord:
        from core.storage import Blobs

        rec = super().put(ctx, action, old)
        key = resource_key(action.key)
        Blobs(ctx.outputs.storage.root).write_text(definition_key(key), dump_definition(key, FeatureTableSpec.model_validate(action.spec)))
        return rec

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        from core.storage import Blobs

        return super().exists(ctx, rec) and Blobs(ctx.outputs.storage.root).exists(definition_key(resource_key(rec.key)))

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        """The definition goes; computed versions stay in the DVC remote (lineage of trained models)."""
        from core.storage import Blobs

        Blobs(ctx.outputs.storage.root).delete(definition_key(resource_key(rec.key)))
        super().delete(ctx, rec)

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any]:
        spec = rec.spec or {}
        return {"name": rec.name, "url": None, "entity_key": spec.get("entity_key"),
                "features": sorted(spec.get("features") or {}), "schedule": spec.get("schedule")}
