"""NetworkPolicies of one env: deny everything, then open exactly the flows the env needs.

Flows (all inside the namespace unless noted):
  every pod      → kube-dns (kube-system) :53
  mlflow         ← serving, job :5000 (+ ingress controller);  → postgres :5432, storage
  postgres       ← mlflow, and serving + job with a networked online feature store :5432
  minio          ← mlflow, serving, job :9000
  serving        ← job :3000 (+ ingress controller);  → mlflow :5000, storage (+ postgres: feature store)
  job            → mlflow :5000, serving :3000, storage (+ postgres: feature store)
Peers without a namespaceSelector match only this namespace, so envs cannot reach each other.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes import pods
from infra.kubernetes.names import MLFLOW_PORT, SERVING_PORT

DNS = {
    "to": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def components(*names: str) -> dict:
    """A podSelector peer for pods of the given components (same namespace)."""
    return {"podSelector": {"matchExpressions": [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": sorted(names)},
    ]}}


def _to(component: str, port: int) -> dict:
    return {"to": [components(component)], "ports": [{"protocol": "TCP", "port": port}]}


def _from(peers: list[dict], port: int) -> dict:
    return {"from": peers, "ports": [{"protocol": "TCP", "port": port}]}


class NetworkIsolation(pulumi.ComponentResource):
    """Default-deny plus one allow policy per component."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        storage_egress: dict,
        database_egress: dict,
        in_cluster_storage: bool,
        in_cluster_database: bool,
        feature_store_clients: bool = False,
        ingress_namespace: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:NetworkIsolation", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        controller = (
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ingress_namespace}}}]
            if ingress_namespace else []
        )

        def policy(key: str, pod_selector: dict, *, ingress: list | None = None, egress: list | None = None) -> None:
            types = (["Ingress"] if ingress is not None else []) + (["Egress"] if egress is not None else [])
            spec: dict = {"podSelector": pod_selector, "policyTypes": types}
            # an empty rule list is the same as none (deny); the API server drops it, and sending
            # it anyway makes every re-apply a change
            if ingress:
                spec["ingress"] = ingress
            if egress:
                spec["egress"] = egress
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{key}",
                metadata={"name": key, "namespace": namespace, "labels": pods.labels(env, "network")},
                spec=spec,
                opts=child,
            )

        policy("default-deny", {}, ingress=[], egress=[])
        policy("allow-dns", {}, egress=[DNS])
        policy(
            "mlflow",
            {"matchLabels": pods.selector("mlflow")},
            ingress=[_from([components("serving", "job"), *controller], MLFLOW_PORT)],
            egress=[database_egress, storage_egress],
        )
        # the online feature store's role reaches only its database; MLflow's need MLflow's password
        clients = ("mlflow", "serving", "job") if feature_store_clients else ("mlflow",)
        store = [database_egress] if feature_store_clients else []
        if in_cluster_database:
            policy("postgres", {"matchLabels": pods.selector("postgres")}, ingress=[_from([components(*clients)], 5432)])
        if in_cluster_storage:
            port = storage_egress["ports"][0]["port"]
            policy("minio", {"matchLabels": pods.selector("minio")},
                   ingress=[_from([components("mlflow", "serving", "job")], port)])
        policy(
            "serving",
            {"matchLabels": pods.selector("serving")},
            ingress=[_from([components("job"), *controller], SERVING_PORT)],
            egress=[_to("mlflow", MLFLOW_PORT), storage_egress, *store],
        )
        policy(
            "job",
            {"matchLabels": pods.selector("job")},
            egress=[_to("mlflow", MLFLOW_PORT), _to("serving", SERVING_PORT), storage_egress, *store],
        )
        self.register_outputs({})
