"""The env's serving endpoint: BentoML Deployment + Service + HorizontalPodAutoscaler.

Same process and env vars as the local platform: each pod runs the launcher
(`ml.serving.launcher`), which serves the code the last bundle deploy shipped (a wheel in the
env's bundle storage, built into the endpoint Bento) and rolls onto new code with no failed
request; the pod itself changes only with `pulumi up`. The endpoint config, inference table and
the BentoML store (models imported by `deploy_model`, the endpoint's Bentos) are files, so they
live on a PVC (`serving-state`) mounted at the same path in serving pods and in bundle job pods.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes import feature_store, pods
from infra.kubernetes.config import KubernetesConfig
from infra.kubernetes.names import SERVING_PORT, STATE_CLAIM, STATE_DIR
from infra.kubernetes.pods import state_env, state_volume
from infra.kubernetes.storage import StorageEndpoint

TOKENS_DIR = "/etc/conveyor/serving"


def token_digests(tokens: list[str]) -> str:
    """The file format the serving gate reads: sorted sha256 hex digests of valid bearer tokens."""
    return json.dumps(sorted(hashlib.sha256(t.encode()).hexdigest() for t in tokens), indent=2)


class Serving(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        cfg: KubernetesConfig,
        tokens: list[pulumi.Input[str]],
        mlflow_username: str,
        mlflow_password: pulumi.Input[str],
        tracking_uri: str,
        storage_uri: str,
        storage: StorageEndpoint,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:Serving", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        component = "serving"
        meta = lambda n: {"name": n, "namespace": namespace, "labels": pods.labels(env, component)}  # noqa: E731
        scfg = cfg.serving

        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=meta("serving"),
            type="Opaque",
            string_data={
                "tokens.json": pulumi.Output.secret(pulumi.Output.all(*tokens).apply(token_digests)),
                "MLFLOW_TRACKING_PASSWORD": pulumi.Output.secret(mlflow_password),
            },
            opts=child,
        )
        claim_spec: dict = {"accessModes": [scfg.state_access_mode], "resources": {"requests": {"storage": scfg.state_size}}}
        if scfg.state_storage_class:
            claim_spec["storageClassName"] = scfg.state_storage_class
        self.claim = k8s.core.v1.PersistentVolumeClaim(f"{name}-state", metadata=meta(STATE_CLAIM), spec=claim_spec,
                                                       opts=child)

        image = cfg.images.platform
        tmp_vol, tmp_mount = pods.tmp_volume()
        state_vol, state_mount = state_volume()
        probe = lambda path, failures: {  # noqa: E731
            "httpGet": {"path": path, "port": SERVING_PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        }
        server = pods.container(
            "serving",
            image.ref,
            cfg.sizing.serving,
            pull_policy=image.pull_policy,
            command=["python", "-m", "ml.serving.launcher"],
            args=["--host", "0.0.0.0", "--port", str(SERVING_PORT), "--state-dir", "/tmp/conveyor-serving"],
            env=[
                *pods.plain_env(
                    CONVEYOR_ENV=env,
                    CONVEYOR_SERVING_TOKENS_FILE=f"{TOKENS_DIR}/tokens.json",
                    CONVEYOR_STORAGE_URI=storage_uri,
                    BENTOML_HOME=f"{STATE_DIR}/bentos",  # the env's model store: storage.bentos of its jobs
                    BENTOML_DO_NOT_TRACK="true",
                    MLFLOW_TRACKING_URI=tracking_uri,
                    MLFLOW_TRACKING_USERNAME=mlflow_username,
                    HOME="/tmp",
                ),
                pods.secret_env("MLFLOW_TRACKING_PASSWORD", "serving", "MLFLOW_TRACKING_PASSWORD"),
                *state_env(),
                *storage.client_env(),
                *feature_store.pod_env(cfg),  # the online feature store (PGPASSWORD from its Secret)
            ],
            envFrom=storage.env_from(),
            ports=[{"name": "http", "containerPort": SERVING_PORT}],
            startupProbe=probe("/livez", 30),
            readinessProbe=probe("/readyz", 3),
            livenessProbe=probe("/livez", 6),
            volumeMounts=[
                {"name": "tokens", "mountPath": TOKENS_DIR, "readOnly": True},
                state_mount,
                tmp_mount,
            ],
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta("serving"),
            spec={
                "replicas": scfg.min_replicas,
                "selector": {"matchLabels": pods.selector(component)},
                "template": {
                    "metadata": {"labels": pods.labels(env, component)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pods.pod_security(),
                        "containers": [server],
                        "volumes": [
                            {"name": "tokens", "secret": {"secretName": "serving", "items": [
                                {"key": "tokens.json", "path": "tokens.json"}]}},
                            state_vol,
                            tmp_vol,
                        ],
                    },
                },
            },
            # The HPA owns the replica count after the first rollout.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secret, self.claim], ignore_changes=["spec.replicas"]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta("serving"),
            spec={"selector": pods.selector(component),
                  "ports": [{"name": "http", "port": SERVING_PORT, "targetPort": SERVING_PORT}]},
            opts=child,
        )
        self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=meta("serving"),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "serving"},
                "minReplicas": scfg.min_replicas,
                "maxReplicas": scfg.max_replicas,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": scfg.target_cpu_utilization},
                }}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
        )
        self.cluster_url = f"http://serving.{cfg.namespace(env)}.svc.cluster.local:{SERVING_PORT}"
        self.register_outputs({"cluster_url": self.cluster_url})
