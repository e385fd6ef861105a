"""The names and ports an env's objects agree on: Services, Secrets, the serving state volume.

Both sides read them from here: the Pulumi components that create the objects and the
manifests of bundle jobs (`infra.kubernetes.manifests`) that refer to them from outside
Pulumi. Plain values, no Pulumi.
"""

from __future__ import annotations

MLFLOW_PORT = 5000  # Service `mlflow`
SERVING_PORT = 3000  # Service `serving`
MINIO_PORT = 9000  # Service `minio` (in-cluster storage)

CREDENTIALS_SECRET = "s3-credentials"  # AWS_* keys of the env's object storage, loaded with envFrom

STATE_DIR = "/var/lib/conveyor"  # serving state (endpoint config, inference table), in serving and job pods
STATE_CLAIM = "serving-state"


def service_account_name(persona: str) -> str:
    """`data_scientist` → `data-scientist` (ServiceAccount names are DNS labels)."""
    return persona.replace("_", "-")


def persona_secret(persona: str) -> str:
    """Secret with the persona's `username`, `password`, `token`."""
    return f"persona-{service_account_name(persona)}"


def outputs_secret(persona: str) -> str:
    """Secret with `outputs.json`: EnvironmentOutputs limited to this persona, in-cluster URLs."""
    return f"env-outputs-{service_account_name(persona)}"
