"""Pod building blocks shared by every workload: labels, hardened security contexts, volumes.

Plain functions returning Kubernetes manifest fragments (camelCase dicts), so the same
code renders Pulumi resources and the bundle engine's Job manifests.
"""

from __future__ import annotations

from infra.kubernetes.config import Resources
from infra.kubernetes.names import STATE_CLAIM, STATE_DIR

PART_OF = "conveyor"
# uid/gid of the `conveyor` user in infra/kubernetes/Dockerfile
PLATFORM_UID = 10001


def labels(env: str, component: str, **extra: str) -> dict[str, str]:
    """Labels every object carries; NetworkPolicies and Services select on `component`."""
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": component,
        "conveyor.io/env": env,
        **extra,
    }


def selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/component": component}


def pod_security(uid: int = PLATFORM_UID) -> dict:
    """Pod-level context: never root, the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(read_only_root: bool = True) -> dict:
    """Container-level context: no privilege escalation, no Linux capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def container(
    name: str,
    image: str,
    resources: Resources,
    *,
    pull_policy: str = "IfNotPresent",
    read_only_root: bool = True,
    **fields,
) -> dict:
    """A container with the mandatory parts (resources, security context) always present."""
    spec = {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy,
        "resources": resources.manifest(),
        "securityContext": container_security(read_only_root),
    }
    spec.update({k: v for k, v in fields.items() if v is not None})
    return spec


def tmp_volume() -> tuple[dict, dict]:
    """A writable /tmp for containers whose root filesystem is read-only."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "tmp", "mountPath": "/tmp"}


def secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def plain_env(**values: str) -> list[dict]:
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def state_env() -> list[dict]:
    """Where the serving engine finds its endpoint config and inference table (also set in jobs)."""
    return plain_env(
        CONVEYOR_STATE_DIR=STATE_DIR,  # storage paths of s3:// envs map under it (core.runtime)
        CONVEYOR_ENDPOINT_DIR=f"{STATE_DIR}/endpoint",
        CONVEYOR_INFERENCE_TABLE=f"{STATE_DIR}/tables/inference",
    )


def state_volume() -> tuple[dict, dict]:
    """The serving state volume (PVC `serving-state`) and its mount, the same path in every pod."""
    return ({"name": "serving-state", "persistentVolumeClaim": {"claimName": STATE_CLAIM}},
            {"name": "serving-state", "mountPath": STATE_DIR})
