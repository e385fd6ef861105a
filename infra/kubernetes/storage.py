"""Object storage of one env: a MinIO per namespace (default) or an existing S3 bucket.

Either way the rest of the env sees the same thing: an `s3://bucket/<env>` root, an
endpoint URL, and a Secret `s3-credentials` with AWS_* keys that clients load with envFrom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes import pods
from infra.kubernetes.config import ExternalS3Storage, Images, MinioStorage, Sizing
from infra.kubernetes.names import CREDENTIALS_SECRET, MINIO_PORT

MINIO_UID = 10002


@dataclass
class StorageEndpoint:
    """What clients of the env's storage need; `egress` is the NetworkPolicy peer+ports to reach it."""

    root_uri: str
    bucket: str
    endpoint_url: str | None
    credentials_secret: str
    egress: dict
    create_bucket: bool
    region: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def client_env(self) -> list[dict]:
        """Env vars for boto3/MLflow/DVC clients (credentials come via envFrom the Secret)."""
        values: dict[str, str] = {}
        if self.endpoint_url:
            values["AWS_ENDPOINT_URL"] = self.endpoint_url
            values["MLFLOW_S3_ENDPOINT_URL"] = self.endpoint_url
        if self.region:
            values["AWS_DEFAULT_REGION"] = self.region
        return pods.plain_env(**values)

    def env_from(self) -> list[dict]:
        return [{"secretRef": {"name": self.credentials_secret}}]


def _root(bucket: str, prefix: str, env: str) -> str:
    parts = [p.strip("/") for p in (prefix, env) if p.strip("/")]
    return f"s3://{bucket}/" + "/".join(parts)


class MinioObjectStore(pulumi.ComponentResource):
    """MinIO Deployment + PVC + Service inside the env namespace; only labelled clients may reach it."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        cfg: MinioStorage,
        images: Images,
        sizing: Sizing,
        root_password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:MinioObjectStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        component = "minio"
        meta = lambda n: {"name": n, "namespace": namespace, "labels": pods.labels(env, component)}  # noqa: E731

        self.credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=meta(CREDENTIALS_SECRET),
            type="Opaque",
            string_data={
                "AWS_ACCESS_KEY_ID": "conveyor",
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(root_password),
            },
            opts=child,
        )
        claim_spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": cfg.size}}}
        if cfg.storage_class:
            claim_spec["storageClassName"] = cfg.storage_class
        self.claim = k8s.core.v1.PersistentVolumeClaim(f"{name}-data", metadata=meta("minio-data"), spec=claim_spec, opts=child)

        tmp_vol, tmp_mount = pods.tmp_volume()
        probe = lambda path: {  # noqa: E731
            "httpGet": {"path": path, "port": MINIO_PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        }
        server = pods.container(
            "minio",
            images.minio.ref,
            sizing.minio,
            pull_policy=images.minio.pull_policy,
            args=["server", "/data", "--address", f":{MINIO_PORT}", "--certs-dir", "/tmp/certs"],
            env=[
                {"name": "MINIO_ROOT_USER", "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "AWS_ACCESS_KEY_ID"}}},
                pods.secret_env("MINIO_ROOT_PASSWORD", CREDENTIALS_SECRET, "AWS_SECRET_ACCESS_KEY"),
                {"name": "HOME", "value": "/tmp"},
            ],
            ports=[{"name": "s3", "containerPort": MINIO_PORT}],
            readinessProbe=probe("/minio/health/ready"),
            livenessProbe=probe("/minio/health/live"),
            volumeMounts=[{"name": "data", "mountPath": "/data"}, tmp_mount],
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta("minio"),
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one writer per volume
                "selector": {"matchLabels": pods.selector(component)},
                "template": {
                    "metadata": {"labels": pods.labels(env, component)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security(MINIO_UID),
                        "containers": [server],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "minio-data"}}, tmp_vol],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.claim, self.credentials]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta("minio"),
            spec={
                "selector": pods.selector(component),
                "ports": [{"name": "s3", "port": MINIO_PORT, "targetPort": MINIO_PORT}],
            },
            opts=child,
        )
        self.endpoint = StorageEndpoint(
            root_uri=_root(cfg.bucket, "", env),
            bucket=cfg.bucket,
            endpoint_url=f"http://minio:{MINIO_PORT}",
            credentials_secret=CREDENTIALS_SECRET,
            egress={"to": [{"podSelector": {"matchLabels": pods.selector(component)}}], "ports": [{"protocol": "TCP", "port": MINIO_PORT}]},
            create_bucket=True,
        )
        self.register_outputs({"root_uri": self.endpoint.root_uri})


class ExternalBucket(pulumi.ComponentResource):
    """An existing S3 bucket: only the credentials Secret lives in the namespace."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        cfg: ExternalS3Storage,
        access_key_id: pulumi.Input[str],
        secret_access_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:ExternalBucket", name, None, opts)
        self.credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": CREDENTIALS_SECRET, "namespace": namespace, "labels": pods.labels(env, "storage")},
            type="Opaque",
            string_data={
                "AWS_ACCESS_KEY_ID": pulumi.Output.secret(access_key_id),
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(secret_access_key),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.endpoint = StorageEndpoint(
            root_uri=_root(cfg.bucket, cfg.prefix, env),
            bucket=cfg.bucket,
            endpoint_url=cfg.endpoint_url,
            credentials_secret=CREDENTIALS_SECRET,
            egress={"to": [{"ipBlock": {"cidr": cfg.egress_cidr}}], "ports": [{"protocol": "TCP", "port": cfg.egress_port}]},
            create_bucket=False,
            region=cfg.region,
        )
        self.register_outputs({"root_uri": self.endpoint.root_uri})
