"""Who may do what in one env namespace: a ServiceAccount per persona, Roles, RoleBindings.

Three namespaced roles, each a superset of the one before:
  view    read workloads, logs and events (never Secrets); port-forward to reach MLflow
  edit    + run work: create/delete Jobs and CronJobs, ConfigMaps, delete pods
  deploy  + roll out the serving endpoint: patch Deployments, Services, HPAs
Nothing here is cluster-scoped, so one env's bindings can never reach another env.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.kubernetes import pods
from infra.kubernetes.config import PersonaAccess
from infra.kubernetes.names import service_account_name

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete"]

ROLE_RULES: dict[str, list[dict]] = {
    "view": [
        {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "configmaps",
                                          "persistentvolumeclaims", "events", "serviceaccounts"], "verbs": READ},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets"], "verbs": READ},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": READ},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies", "ingresses"], "verbs": READ},
        {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get", "create"]},
    ],
}
ROLE_RULES["edit"] = ROLE_RULES["view"] + [
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
]
ROLE_RULES["deploy"] = ROLE_RULES["edit"] + [
    {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["update", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["update", "patch"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["update", "patch"]},
]


class PersonaAccessControl(pulumi.ComponentResource):
    """ServiceAccounts for every persona, plus one Role+RoleBinding per persona with any access."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        namespace: pulumi.Input[str],
        access: dict[str, PersonaAccess],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("conveyor:kubernetes:PersonaAccessControl", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.service_accounts: dict[str, k8s.core.v1.ServiceAccount] = {}
        for role in sorted({a.kubernetes for a in access.values()} - {"none"}):
            k8s.rbac.v1.Role(
                f"{name}-role-{role}",
                metadata={"name": f"conveyor-{role}", "namespace": namespace, "labels": pods.labels(env, "access")},
                rules=ROLE_RULES[role],
                opts=child,
            )
        for persona, grant in sorted(access.items()):
            sa = service_account_name(persona)
            labels = pods.labels(env, "access", **{"conveyor.io/persona": sa})
            self.service_accounts[persona] = k8s.core.v1.ServiceAccount(
                f"{name}-sa-{sa}",
                metadata={"name": sa, "namespace": namespace, "labels": labels},
                automount_service_account_token=False,
                opts=child,
            )
            if grant.kubernetes == "none":
                continue
            subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
            subjects += [{"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"} for g in grant.groups]
            k8s.rbac.v1.RoleBinding(
                f"{name}-binding-{sa}",
                metadata={"name": f"{sa}-{grant.kubernetes}", "namespace": namespace, "labels": labels},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"conveyor-{grant.kubernetes}"},
                subjects=subjects,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service_accounts[persona]]),
            )
        self.register_outputs({})
