"""PostgreSQL behind MLflow: an in-cluster StatefulSet (default) or an external server.

Either way the result is one Secret `mlflow-db` with the two SQLAlchemy URIs MLflow
needs (tracking store and basic-auth user store live in separate databases), plus the
NetworkPolicy egress rule that lets MLflow reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes import pods
from infra.kubernetes.config import ExternalPostgres, Images, InClusterPostgres, Sizing

URIS_SECRET = "mlflow-db"
TRACKING_DB = "mlflow"
AUTH_DB = "mlflow_auth"
DB_USER = "mlflow"
PG_PORT = 5432
PG_UID = 999  # `postgres` user of the official Debian-based image

# The image's entrypoint runs *.sql from this dir once, on an empty data directory.
_INIT_SQL = f"CREATE DATABASE {AUTH_DB} OWNER {DB_USER};\n"


@dataclass
class Database:
    """`uris` (secret): backend-store-uri and auth-db-uri, also stored in Secret `uris_secret`."""

    uris_secret: str
    uris: pulumi.Output[dict]
    egress: dict


def _uris(host: str, port: int, user: str, password: pulumi.Input[str], sslmode: str | None) -> pulumi.Output[dict]:
    query = f"?sslmode={sslmode}" if sslmode else ""

    def build(pw: str) -> dict:
        base = f"postgresql://{quote(user, safe='')}:{quote(pw, safe='')}@{host}:{port}"
        return {"backend-store-uri": f"{base}/{TRACKING_DB}{query}", "auth-db-uri": f"{base}/{AUTH_DB}{query}"}

    return pulumi.Output.secret(pulumi.Output.from_input(password).apply(build))


class InClusterDatabase(pulumi.ComponentResource):
    """A single-replica PostgreSQL StatefulSet with its own volume; reachable only from MLflow."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        cfg: InClusterPostgres,
        images: Images,
        sizing: Sizing,
        password: pulumi.Input[str],
        feature_store_password: pulumi.Input[str] | None = None,
        feature_store_init: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`feature_store_*`: the online feature store's role password and the init script creating
        its role and database (infra/kubernetes/feature_store.py), when the env has one."""
        super().__init__("conveyor:kubernetes:InClusterDatabase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        component = "postgres"
        meta = lambda n: {"name": n, "namespace": namespace, "labels": pods.labels(env, component)}  # noqa: E731

        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=meta("postgres"),
            type="Opaque",
            string_data={"POSTGRES_USER": DB_USER, "POSTGRES_DB": TRACKING_DB, "POSTGRES_PASSWORD": pulumi.Output.secret(password),
                         **({"FEATURES_PASSWORD": pulumi.Output.secret(feature_store_password)}
                            if feature_store_password is not None else {})},
            opts=child,
        )
        # Short Service name: MLflow always runs in the same namespace as its database.
        uris = _uris("postgres", PG_PORT, DB_USER, password, None)
        self.uris = k8s.core.v1.Secret(
            f"{name}-uris",
            metadata=meta(URIS_SECRET),
            type="Opaque",
            string_data=uris,
            opts=child,
        )
        self.init_sql = k8s.core.v1.ConfigMap(
            f"{name}-init", metadata=meta("postgres-init"), data={"10-auth-db.sql": _INIT_SQL,
                                                                **({"20-feature-store.sh": feature_store_init}
                                                                   if feature_store_init else {})}, opts=child
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta("postgres"),
            spec={
                "clusterIP": "None",
                "selector": pods.selector(component),
                "ports": [{"name": "postgres", "port": PG_PORT, "targetPort": PG_PORT}],
            },
            opts=child,
        )
        ready = {
            "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", DB_USER, "-d", TRACKING_DB]},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        }
        tmp_vol, tmp_mount = pods.tmp_volume()
        server = pods.container(
            "postgres",
            images.postgres.ref,
            sizing.postgres,
            pull_policy=images.postgres.pull_policy,
            envFrom=[{"secretRef": {"name": "postgres"}}],
            env=pods.plain_env(PGDATA="/var/lib/postgresql/data/pgdata"),
            ports=[{"name": "postgres", "containerPort": PG_PORT}],
            readinessProbe=ready,
            livenessProbe={**ready, "initialDelaySeconds": 30},
            volumeMounts=[
                {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                {"name": "run", "mountPath": "/var/run/postgresql"},
                {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
                tmp_mount,
            ],
        )
        claim: dict = {
            "metadata": {"name": "data", "labels": pods.labels(env, component)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": cfg.size}}},
        }
        if cfg.storage_class:
            claim["spec"]["storageClassName"] = cfg.storage_class
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=meta("postgres"),
            spec={
                "serviceName": "postgres",
                "replicas": 1,
                "selector": {"matchLabels": pods.selector(component)},
                "template": {
                    "metadata": {"labels": pods.labels(env, component)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security(PG_UID),
                        "containers": [server],
                        "volumes": [
                            {"name": "run", "emptyDir": {}},
                            {"name": "init", "configMap": {"name": "postgres-init"}},
                            tmp_vol,
                        ],
                    },
                },
                "volumeClaimTemplates": [claim],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secret, self.init_sql, self.service]),
        )
        self.database = Database(
            uris_secret=URIS_SECRET,
            uris=uris,
            egress={"to": [{"podSelector": {"matchLabels": pods.selector(component)}}], "ports": [{"protocol": "TCP", "port": PG_PORT}]},
        )
        self.register_outputs({})


class ExternalDatabase(pulumi.ComponentResource):
    """A managed PostgreSQL: the databases `mlflow` and `mlflow_auth` must already exist."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        cfg: ExternalPostgres,
        password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:ExternalDatabase", name, None, opts)
        uris = _uris(cfg.host, cfg.port, cfg.user, password, cfg.sslmode)
        self.uris = k8s.core.v1.Secret(
            f"{name}-uris",
            metadata={"name": URIS_SECRET, "namespace": namespace, "labels": pods.labels(env, "postgres")},
            type="Opaque",
            string_data=uris,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.database = Database(
            uris_secret=URIS_SECRET,
            uris=uris,
            egress={"to": [{"ipBlock": {"cidr": cfg.egress_cidr}}], "ports": [{"protocol": "TCP", "port": cfg.port}]},
        )
        self.register_outputs({})
