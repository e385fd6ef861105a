"""Just enough Kubernetes semantics to ask questions of rendered manifests.

- `Cluster.can(subject, verb, group, resource, namespace)`: RBAC, following RoleBindings to Roles
- `Cluster.flow(src, dst, port)`: NetworkPolicy, as the API documents it (a flow needs the
  source's egress *and* the destination's ingress to allow it; unselected pods are open)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, namespace: str, **labels: str) -> Pod:
        return cls(namespace, tuple(sorted(labels.items())))

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """LabelSelector semantics: matchLabels AND matchExpressions; {} matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass
class Cluster:
    objects: list[dict] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    # ------------------------------------------------------------------ RBAC
    def can(self, subject: dict, verb: str, group: str, resource: str, namespace: str) -> bool:
        """subject: {"kind": "ServiceAccount", "name", "namespace"} or {"kind": "Group", "name"}."""
        for binding in self.of_kind("RoleBinding"):
            if binding["metadata"]["namespace"] != namespace:
                continue
            if not any(_same_subject(s, subject) for s in binding.get("subjects", [])):
                continue
            ref = binding["roleRef"]
            role = next((r for r in self.of_kind(ref["kind"])
                         if r["metadata"]["name"] == ref["name"]
                         and r["metadata"].get("namespace") in (namespace, None)), None)
            for rule in (role or {}).get("rules", []):
                if (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", [])) and \
                   (resource in rule.get("resources", []) or "*" in rule.get("resources", [])) and \
                   (verb in rule.get("verbs", []) or "*" in rule.get("verbs", [])):
                    return True
        for binding in self.of_kind("ClusterRoleBinding"):
            if any(_same_subject(s, subject) for s in binding.get("subjects", [])):
                return True  # conservative: any cluster-wide binding counts as access
        return False

    # ------------------------------------------------------------------ NetworkPolicy
    def _policies(self, namespace: str, pod_labels: dict[str, str], direction: str) -> list[dict]:
        return [p for p in self.of_kind("NetworkPolicy")
                if p["metadata"]["namespace"] == namespace
                and direction in p["spec"].get("policyTypes", ["Ingress"])
                and matches(p["spec"].get("podSelector") or {}, pod_labels)]

    def _peer_matches_pod(self, peer: dict, policy_ns: str, pod: Pod) -> bool:
        if "ipBlock" in peer:
            return False
        ns_sel = peer.get("namespaceSelector")
        pod_sel = peer.get("podSelector")
        if ns_sel is None:
            if pod.namespace != policy_ns:
                return False
        elif not matches(ns_sel, {"kubernetes.io/metadata.name": pod.namespace}):
            return False
        return matches(pod_sel or {}, pod.label_map)

    @staticmethod
    def _port_ok(rule: dict, port: int, protocol: str) -> bool:
        ports = rule.get("ports")
        if not ports:
            return True
        return any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)

    def egress_allowed(self, src: Pod, dst: Pod | str, port: int, protocol: str = "TCP") -> bool:
        policies = self._policies(src.namespace, src.label_map, "Egress")
        if not policies:
            return True
        for policy in policies:
            for rule in policy["spec"].get("egress") or []:
                if not self._port_ok(rule, port, protocol):
                    continue
                peers = rule.get("to")
                if not peers:
                    return True
                for peer in peers:
                    if isinstance(dst, str):
                        if "ipBlock" in peer and ipaddress.ip_address(dst) in ipaddress.ip_network(peer["ipBlock"]["cidr"]):
                            return True
                    elif self._peer_matches_pod(peer, policy["metadata"]["namespace"], dst):
                        return True
        return False

    def ingress_allowed(self, src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
        policies = self._policies(dst.namespace, dst.label_map, "Ingress")
        if not policies:
            return True
        for policy in policies:
            for rule in policy["spec"].get("ingress") or []:
                if not self._port_ok(rule, port, protocol):
                    continue
                peers = rule.get("from")
                if not peers or any(self._peer_matches_pod(p, policy["metadata"]["namespace"], src) for p in peers):
                    return True
        return False

    def flow(self, src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
        return self.egress_allowed(src, dst, port, protocol) and self.ingress_allowed(src, dst, port, protocol)


def _same_subject(a: dict, b: dict) -> bool:
    return a.get("kind") == b.get("kind") and a.get("name") == b.get("name") and \
        (a.get("kind") != "ServiceAccount" or a.get("namespace") == b.get("namespace"))
