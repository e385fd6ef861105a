"""Typed stack config of the `kubernetes` platform (`conveyor:kubernetes` in Pulumi.<env>.yaml).

Everything a cluster needs that the local platform does not (images, kubeconfig,
storage/database choice, sizing, access roles) lives here, validated once at the edge
so the components can stay plain and trust their inputs.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")

KubeRole = Literal["none", "view", "edit", "deploy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Image(_Strict):
    repository: str
    tag: str
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field("IfNotPresent")

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Images(_Strict):
    """`platform` is this repo's image (infra/kubernetes/Dockerfile): MLflow, serving and jobs all run it."""

    platform: Image = Image(repository="localhost/conveyor", tag="0.1.0")
    postgres: Image = Image(repository="docker.io/library/postgres", tag="16.4")
    minio: Image = Image(repository="docker.io/minio/minio", tag="RELEASE.2025-09-07T16-13-09Z")


class Quantities(_Strict):
    cpu: str
    memory: str

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 250m, 512Mi, 1Gi)")
        return value


class Resources(_Strict):
    requests: Quantities
    limits: Quantities

    def manifest(self) -> dict:
        return {"requests": self.requests.model_dump(), "limits": self.limits.model_dump()}


def _res(req_cpu: str, req_mem: str, lim_cpu: str, lim_mem: str) -> Resources:
    return Resources(requests=Quantities(cpu=req_cpu, memory=req_mem), limits=Quantities(cpu=lim_cpu, memory=lim_mem))


class Sizing(_Strict):
    """Requests/limits per container kind: every container the platform renders gets one of these."""

    mlflow: Resources = _res("250m", "512Mi", "1", "1Gi")
    serving: Resources = _res("250m", "512Mi", "1", "2Gi")
    postgres: Resources = _res("100m", "256Mi", "500m", "512Mi")
    minio: Resources = _res("100m", "256Mi", "500m", "1Gi")
    jobs: Resources = _res("500m", "1Gi", "2", "4Gi")
    init: Resources = _res("50m", "128Mi", "500m", "512Mi")


class MinioStorage(_Strict):
    """Default: one MinIO per env namespace (Deployment + PVC)."""

    kind: Literal["minio"] = "minio"
    bucket: str = "conveyor"
    size: str = "10Gi"
    storage_class: str | None = Field(None)


class ExternalS3Storage(_Strict):
    """An existing bucket. Set the keys as secrets:
    `pulumi config set --secret --path conveyor:kubernetes.storage.secret_access_key ...`"""

    kind: Literal["s3"]
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr
    secret_access_key: SecretStr
    egress_cidr: str = "0.0.0.0/0"
    egress_port: int = 443


class InClusterPostgres(_Strict):
    kind: Literal["statefulset"] = "statefulset"
    size: str = "5Gi"
    storage_class: str | None = Field(None)


class ExternalPostgres(_Strict):
    """A managed PostgreSQL with databases `mlflow` and `mlflow_auth`. The password as a secret:
    `pulumi config set --secret --path conveyor:kubernetes.postgres.password ...`"""

    kind: Literal["external"]
    host: str
    port: int = 5432
    user: str = "mlflow"
    password: SecretStr
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "require"
    egress_cidr: str = "0.0.0.0/0"


class FeatureStore(_Strict):
    """Where the env's online feature store lives (infra/kubernetes/feature_store.py)."""

    online: Literal["postgresql", "sqlite"] = Field(
        "postgresql", description="postgresql: a database on the env's PostgreSQL server, shared by every serving "
                                  "replica and job pod; sqlite: files on the serving state volume (one node)")
    database: str = Field("feature_store", pattern=r"^[a-z_][a-z0-9_]*$")
    user: str = Field("features", pattern=r"^[a-z_][a-z0-9_]*$", description="its own login role")
    password: SecretStr | None = Field(None, description="with postgres.kind external: the role's password (secret)")


class Serving(_Strict):
    # Deprecated, ignored: pods run the launcher (`python -m ml.serving.launcher`), which serves the Bento
    # of the code the last bundle deploy shipped. Still accepted because unknown keys are refused, and a
    # stack that set it must keep previewing; drop it from the stack config.
    service: str | None = Field(None, description="deprecated, ignored (pods run ml.serving.launcher)")
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(3, ge=1)
    target_cpu_utilization: int = Field(70, ge=1, le=100)
    state_size: str = Field("2Gi", description="PVC for endpoint config + inference table")
    state_access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        "ReadWriteOnce", description="ReadWriteMany when serving pods span nodes"
    )
    state_storage_class: str | None = Field(None)

    @model_validator(mode="after")
    def _bounds(self) -> Serving:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        return self


class PersonaAccess(_Strict):
    """A persona's Kubernetes role in one env (its MLflow role comes from `conveyor:access`)."""

    kubernetes: KubeRole
    groups: list[str] = Field(default_factory=list, description="cluster user groups bound to the same Role")


# The seeds' rule, per env: data scientists edit dev and only view staging/prod; ci deploys
# staging and prod; ml engineers deploy up to staging, prod changes go through ci.
DEFAULT_ACCESS: dict[str, dict[str, KubeRole]] = {
    "dev": {"data_scientist": "edit", "ml_engineer": "edit", "ci": "deploy"},
    "staging": {"data_scientist": "view", "ml_engineer": "deploy", "ci": "deploy"},
    "prod": {"data_scientist": "view", "ml_engineer": "view", "ci": "deploy"},
}
# Personas outside the table (custom ones): derived from their MLflow role.
ROLE_FALLBACK: dict[str, KubeRole] = {"read": "view", "write": "edit"}


class Ingress(_Strict):
    """Optional: expose tracking/serving through an ingress controller instead of port-forward."""

    class_name: str = Field("nginx")
    controller_namespace: str = Field("ingress-nginx")
    tracking_host: str
    serving_host: str
    tls_secret: str | None = Field(None)


class KubernetesConfig(_Strict):
    """`conveyor:kubernetes` — all fields optional; defaults give a working kind/minikube setup."""

    kubeconfig: str | None = Field(None, description="path; default: $KUBECONFIG or ~/.kube/config")
    context: str | None = None
    namespace_prefix: str = Field("conveyor")
    images: Images = Images()
    sizing: Sizing = Sizing()
    storage: Annotated[MinioStorage | ExternalS3Storage, Field(discriminator="kind")] = MinioStorage()
    postgres: Annotated[InClusterPostgres | ExternalPostgres, Field(discriminator="kind")] = InClusterPostgres()
    serving: Serving = Serving()
    feature_store: FeatureStore = FeatureStore()
    access: dict[str, PersonaAccess] = Field(default_factory=dict, description="overrides of DEFAULT_ACCESS[env]")
    ingress: Ingress | None = None
    wait_for_ready: bool = Field(
        True, description="block `pulumi up` until workloads are ready; false: apply and move on "
                          "(pulumi.com/skipAwait on every object, e.g. when images are pushed later)")

    @field_validator("namespace_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 40:
            raise ValueError(f"{value!r} must be a DNS label (lowercase letters, digits, '-') of at most 40 chars")
        return value

    def namespace(self, env: str) -> str:
        return f"{self.namespace_prefix}-{env}"

    def persona_access(self, env: str, roles: dict[str, str]) -> dict[str, PersonaAccess]:
        """Kubernetes access per persona in `env` (`roles`: persona → MLflow role read|write).

        Explicit `access` entries win; then the seeds' table; then the MLflow role.
        """
        unknown = sorted(p for p in self.access if p not in roles)
        if unknown:
            raise ValueError(f"conveyor:kubernetes.access: unknown persona(s) {', '.join(unknown)}")
        table = DEFAULT_ACCESS.get(env, {})
        result: dict[str, PersonaAccess] = {}
        for persona, role in sorted(roles.items()):
            if persona in self.access:
                result[persona] = self.access[persona]
            elif persona in table:
                result[persona] = PersonaAccess(kubernetes=table[persona])
            else:
                result[persona] = PersonaAccess(kubernetes=ROLE_FALLBACK.get(role, "view"))
        return result


_UNION_TAGS = {"minio", "s3", "statefulset", "external"}


def parse_kubernetes_config(raw: dict | None) -> KubernetesConfig:
    """`conveyor:kubernetes` as a typed object; errors name the key, like infra.config does."""
    from pydantic import ValidationError

    try:
        return KubernetesConfig.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        # drop the union tag pydantic puts in the location (storage.s3.bucket → storage.bucket)
        loc = [str(p) for i, p in enumerate(err["loc"])
               if not (i > 0 and err["loc"][i - 1] in ("storage", "postgres") and p in _UNION_TAGS)]
        key = "conveyor:kubernetes." + ".".join(loc)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing (secrets: pulumi config set --secret --path <key> <value>)"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        raise ValueError(f"{key}: {msg}") from None
