"""The one contract between environments and everything above them.

Both platforms (`local`, `kubernetes`) publish exactly these stack outputs, so
bundles, jobs and the serving layer never know which platform they talk to.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field

PERSONAS_REQUIRED = ("data_scientist", "ml_engineer", "ci")
ENVIRONMENTS = ("dev", "staging", "prod")


class Credential(BaseModel):
    """What one persona uses to reach an environment (a Pulumi secret in the stack)."""

    username: str
    password: str
    token: str = Field(description="bearer token for the serving endpoint")


class StoragePaths(BaseModel):
    """Well-known locations inside an environment's storage (URIs)."""

    root: str
    dvc_remote: str
    mlflow_artifacts: str
    models: str
    bentos: str
    inference_table: str
    metric_table: str
    bundle: str
    endpoint: str


class EnvironmentOutputs(BaseModel):
    """Stack outputs of one environment, identical in shape on every platform."""

    env: str
    platform: str
    tracking_uri: str
    serving_url: str
    storage_uri: str
    storage: StoragePaths
    credentials: dict[str, Credential]

    def credential(self, persona: str) -> Credential:
        try:
            return self.credentials[persona]
        except KeyError:
            known = ", ".join(sorted(self.credentials))
            raise KeyError(f"persona {persona!r} has no credentials in env {self.env!r} (known: {known})") from None


# Where each `StoragePaths` location lives under an environment's storage root.
STORAGE_SUBPATHS: dict[str, str] = {
    "dvc_remote": "dvc",
    "mlflow_artifacts": "mlflow-artifacts",
    "models": "models",
    "bentos": "bentos",
    "inference_table": "tables/inference",
    "metric_table": "tables/metrics",
    "bundle": "bundle",
    "endpoint": "endpoint",
}


def storage_layout(root_uri: str) -> StoragePaths:
    """Derive the fixed sub-locations (`STORAGE_SUBPATHS`) from a storage root URI (file:// or s3://)."""
    base = root_uri.rstrip("/")
    return StoragePaths(root=base, **{field: f"{base}/{sub}" for field, sub in STORAGE_SUBPATHS.items()})


def local_path(uri: str) -> Path:
    """A file:// URI as a Path; raises for remote URIs so callers fail loudly."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{uri} is not a local path")
    return Path(parsed.path)
