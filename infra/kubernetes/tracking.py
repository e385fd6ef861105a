"""MLflow tracking server + model registry of one env: Deployment + Service on PostgreSQL.

Same auth as the local platform: `mlflow server --app-name basic-auth` with
`authorization_function = infra.components.mlflow_auth:authenticate` and the persona
roles file, so a `read` persona gets 403 on every write on both platforms. Users are
created by an init container (`infra.kubernetes.bootstrap`) straight in the auth
database, because Pulumi itself cannot reach a Service inside the cluster.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes import pods
from infra.kubernetes.config import Ingress, KubernetesConfig
from infra.kubernetes.database import Database
from infra.kubernetes.names import MLFLOW_PORT
from infra.kubernetes.storage import StorageEndpoint

CONFIG_DIR = "/etc/conveyor/mlflow"


def auth_ini(default_permission: str, auth_db_uri: str, admin_username: str, admin_password: str) -> str:
    return "\n".join([
        "[mlflow]",
        f"default_permission = {default_permission}",
        f"database_uri = {auth_db_uri}",
        f"admin_username = {admin_username}",
        f"admin_password = {admin_password}",
        "authorization_function = infra.components.mlflow_auth:authenticate",
        # password hashing is deliberately slow; remember a verified login for a minute (as local does)
        "auth_cache_ttl_seconds = 60",
        "",
    ])


def allowed_hosts(namespace: str, ingress: Ingress | None) -> str:
    """Host headers MLflow accepts: its Service names, port-forward (localhost) and the ingress host."""
    hosts = ["mlflow", "mlflow:*", f"mlflow.{namespace}", f"mlflow.{namespace}:*", f"mlflow.{namespace}.svc*",
             "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    if ingress:
        hosts += [ingress.tracking_host, f"{ingress.tracking_host}:*"]
    return ",".join(hosts)


class Tracking(pulumi.ComponentResource):
    """MLflow with basic-auth; artifacts proxied to the env's object storage."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        cfg: KubernetesConfig,
        default_permission: str,
        admin_username: str,
        admin_password: pulumi.Input[str],
        users: dict[str, pulumi.Input[str]],
        roles: dict[str, str],
        flask_secret: pulumi.Input[str],
        workers: int,
        artifacts_uri: str,
        storage: StorageEndpoint,
        database: Database,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:Tracking", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        component = "mlflow"
        meta = lambda n: {"name": n, "namespace": namespace, "labels": pods.labels(env, component)}  # noqa: E731

        ini = pulumi.Output.all(admin_password, database.uris).apply(
            lambda v: auth_ini(default_permission, v[1]["auth-db-uri"], admin_username, v[0])
        )
        everyone = {**users, admin_username: admin_password}
        users_json = pulumi.Output.all(**everyone).apply(lambda u: json.dumps(
            {name: {"password": pw, "admin": name == admin_username} for name, pw in sorted(u.items())}, indent=2
        ))
        roles_json = json.dumps(dict(sorted(roles.items())), indent=2)
        self.secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata=meta("mlflow-auth"),
            type="Opaque",
            string_data={
                "basic_auth.ini": pulumi.Output.secret(ini),
                "users.json": pulumi.Output.secret(users_json),
                "flask-secret-key": pulumi.Output.secret(flask_secret),
            },
            opts=child,
        )
        self.roles = k8s.core.v1.ConfigMap(f"{name}-roles", metadata=meta("mlflow-roles"),
                                           data={"roles.json": roles_json}, opts=child)
        # Changing users, passwords or roles restarts the pod, which re-runs the bootstrap.
        # A truncated digest of high-entropy secrets reveals nothing; unsecret keeps the Deployment diffable.
        config_hash = pulumi.Output.unsecret(pulumi.Output.all(ini, users_json).apply(
            lambda v: hashlib.sha256("\0".join([*v, roles_json]).encode()).hexdigest()[:16]
        ))

        image = cfg.images.platform
        tmp_vol, tmp_mount = pods.tmp_volume()
        config_mount = {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}
        bootstrap_env = [
            pods.secret_env("CONVEYOR_AUTH_DB_URI", database.uris_secret, "auth-db-uri"),
            *pods.plain_env(CONVEYOR_MLFLOW_USERS_FILE=f"{CONFIG_DIR}/users.json", HOME="/tmp"),
            *storage.client_env(),
        ]
        if storage.create_bucket:
            bootstrap_env += pods.plain_env(CONVEYOR_CREATE_BUCKET=storage.bucket)
        bootstrap = pods.container(
            "bootstrap",
            image.ref,
            cfg.sizing.init,
            pull_policy=image.pull_policy,
            command=["python", "-m", "infra.kubernetes.bootstrap"],
            env=bootstrap_env,
            envFrom=storage.env_from(),
            volumeMounts=[config_mount, tmp_mount],
        )
        probe = {
            "httpGet": {"path": "/health", "port": MLFLOW_PORT, "httpHeaders": [{"name": "Host", "value": "localhost"}]},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
        }
        server = pods.container(
            "mlflow",
            image.ref,
            cfg.sizing.mlflow,
            pull_policy=image.pull_policy,
            command=["mlflow", "server"],
            args=[
                "--app-name", "basic-auth",
                "--host", "0.0.0.0", "--port", str(MLFLOW_PORT), "--workers", str(workers),
                "--serve-artifacts", "--artifacts-destination", artifacts_uri,
                "--allowed-hosts", allowed_hosts(cfg.namespace(env), cfg.ingress),
            ],
            env=[
                pods.secret_env("MLFLOW_BACKEND_STORE_URI", database.uris_secret, "backend-store-uri"),
                pods.secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", "mlflow-auth", "flask-secret-key"),
                *pods.plain_env(
                    MLFLOW_AUTH_CONFIG_PATH=f"{CONFIG_DIR}/basic_auth.ini",
                    CONVEYOR_MLFLOW_ROLES_FILE=f"{CONFIG_DIR}/roles.json",
                    CONVEYOR_ENV=env,
                    HOME="/tmp",
                ),
                *storage.client_env(),
            ],
            envFrom=storage.env_from(),
            ports=[{"name": "http", "containerPort": MLFLOW_PORT}],
            startupProbe={**probe, "failureThreshold": 30},
            readinessProbe={**probe, "failureThreshold": 3},
            livenessProbe={**probe, "failureThreshold": 6},
            volumeMounts=[config_mount, tmp_mount],
        )
        config_volume = {
            "name": "config",
            "projected": {"sources": [
                {"secret": {"name": "mlflow-auth", "items": [
                    {"key": "basic_auth.ini", "path": "basic_auth.ini"}, {"key": "users.json", "path": "users.json"},
                ]}},
                {"configMap": {"name": "mlflow-roles", "items": [{"key": "roles.json", "path": "roles.json"}]}},
            ]},
        }
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta("mlflow"),
            spec={
                "replicas": 1,  # the bootstrap migrates the auth DB; one writer at a time
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": pods.selector(component)},
                "template": {
                    "metadata": {
                        "labels": pods.labels(env, component),
                        "annotations": {"conveyor.io/config-hash": config_hash},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security(),
                        "initContainers": [bootstrap],
                        "containers": [server],
                        "volumes": [config_volume, tmp_vol],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secret, self.roles]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta("mlflow"),
            spec={"selector": pods.selector(component),
                  "ports": [{"name": "http", "port": MLFLOW_PORT, "targetPort": MLFLOW_PORT}]},
            opts=child,
        )
        self.cluster_uri = f"http://mlflow.{cfg.namespace(env)}.svc.cluster.local:{MLFLOW_PORT}"
        self.register_outputs({"cluster_uri": self.cluster_uri})
