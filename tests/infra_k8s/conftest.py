"""Render the Pulumi program once per scenario (each in its own process, all in parallel)."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.infra_k8s.harness import render

PORTS = {"dev": (5101, 3101), "staging": (5201, 3201), "prod": (5301, 3301)}
# the seeds' rule: data scientists write dev only; ci and ml engineers write everywhere
ROLES = {
    "dev": {"data_scientist": "write", "ml_engineer": "write", "ci": "write"},
    "staging": {"data_scientist": "read", "ml_engineer": "write", "ci": "write"},
    "prod": {"data_scientist": "read", "ml_engineer": "write", "ci": "write"},
}


def stack_config(env: str, platform: str = "kubernetes", kubernetes: dict | None = None, **extra) -> dict:
    tracking, serving = PORTS[env]
    cfg = {
        "conveyor:platform": platform,
        "conveyor:ports": {"tracking": tracking, "serving": serving},
        "conveyor:access": {
            "default_permission": "EDIT" if env == "dev" else "READ",
            "personas": {p: {"role": r} for p, r in ROLES[env].items()},
        },
    }
    if kubernetes is not None:
        cfg["conveyor:kubernetes"] = kubernetes
    cfg.update(extra)
    return cfg


EXTERNAL = {
    "context": "kind-conveyor",
    "kubeconfig": "~/.kube/config",
    "storage": {"kind": "s3", "bucket": "acme-ml", "prefix": "conveyor", "region": "eu-west-1",
                "egress_cidr": "52.218.0.0/17", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3-secret-example"},
    "postgres": {"kind": "external", "host": "pg.internal.example", "egress_cidr": "10.20.0.0/16",
                 "password": "pg-secret-example"},
    "feature_store": {"password": "fs-secret-example"},  # the online store's role on the external server
    "ingress": {"tracking_host": "mlflow.prod.example", "serving_host": "api.prod.example", "tls_secret": "prod-tls"},
    "serving": {"min_replicas": 2, "max_replicas": 6, "state_access_mode": "ReadWriteMany"},
    "images": {"platform": {"repository": "registry.example/conveyor", "tag": "1.2.3", "pull_policy": "Always"}},
}

SCENARIOS = {
    "dev": ("dev", stack_config("dev")),
    "staging": ("staging", stack_config("staging")),
    "prod": ("prod", stack_config("prod")),
    "prod-external": ("prod", stack_config("prod", kubernetes=copy.deepcopy(EXTERNAL))),
    "local-dev": ("dev", stack_config("dev", platform="local")),
}


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, dict]:
    """scenario → {"resources": [...], "outputs": {...}} from a real program run under mocks."""
    home: Path = tmp_path_factory.mktemp("conveyor-home")
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        futures = {key: pool.submit(render, env, cfg, home / key) for key, (env, cfg) in SCENARIOS.items()}
        return {key: f.result() for key, f in futures.items()}
