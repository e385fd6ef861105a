"""The `Environment` contract both platforms implement, and the platform switch.

An environment is Storage + Tracking (MLflow server and registry) + Access
(personas, credentials) + Serving (the BentoML endpoint) + Jobs (scheduler).
Credentials are generated here, once, so every platform serves the same
identities; platforms only decide *where* things run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.config import StackConfig
from infra.local.resources import RandomSecret

ADMIN_USERNAME = "conveyor-admin"
SERVING_USERNAME = "conveyor-serving"


@dataclass
class Identity:
    """One principal of the environment: MLflow login plus a serving bearer token."""

    username: str
    password: pulumi.Output[str]
    token: pulumi.Output[str]
    role: str


@dataclass
class EnvironmentArgs:
    """Typed inputs every platform's Environment component takes."""

    config: StackConfig
    personas: dict[str, Identity]
    admin: Identity
    serving: Identity
    flask_secret: pulumi.Output[str]


def generate_identities(cfg: StackConfig, parent: pulumi.Resource | None = None) -> EnvironmentArgs:
    """Passwords and tokens for every persona (plus the platform's own admin and serving users)."""
    opts = pulumi.ResourceOptions(parent=parent)

    def identity(key: str, username: str, role: str) -> Identity:
        password = RandomSecret(f"{cfg.env}-{key}-password", length=24, opts=opts).value
        token = RandomSecret(f"{cfg.env}-{key}-token", length=32, opts=opts).value
        return Identity(username=username, password=password, token=token, role=role)

    personas = {name: identity(name, name, p.role) for name, p in sorted(cfg.access.personas.items())}
    return EnvironmentArgs(
        config=cfg,
        personas=personas,
        admin=identity("admin", ADMIN_USERNAME, "write"),
        serving=identity("serving", SERVING_USERNAME, "read"),
        flask_secret=RandomSecret(f"{cfg.env}-flask-secret", length=32, opts=opts).value,
    )


def credentials_output(personas: dict[str, Identity]) -> pulumi.Output:
    """persona → {username, password, token}, as one secret output."""
    return pulumi.Output.secret(
        pulumi.Output.all(
            **{
                name: pulumi.Output.all(username=i.username, password=i.password, token=i.token)
                for name, i in personas.items()
            }
        )
    )


class Environment(pulumi.ComponentResource):
    """What every platform exposes; the stack exports exactly these outputs."""

    tracking_uri: pulumi.Output[str]
    serving_url: pulumi.Output[str]
    storage_uri: pulumi.Output[str]
    storage: pulumi.Output[dict]
    credentials: pulumi.Output[dict]

    def export(self) -> None:
        pulumi.export("env", self.env_name)
        pulumi.export("platform", self.platform)
        pulumi.export("tracking_uri", self.tracking_uri)
        pulumi.export("serving_url", self.serving_url)
        pulumi.export("storage_uri", self.storage_uri)
        pulumi.export("storage", self.storage)
        pulumi.export("credentials", self.credentials)

    env_name: str
    platform: str


def create_environment(cfg: StackConfig) -> Environment:
    """Build the environment on the configured platform."""
    if cfg.platform == "kubernetes":
        from infra.kubernetes import KubernetesEnvironment
        from infra.kubernetes.environment import preflight

        preflight(cfg)
        return KubernetesEnvironment(cfg.env, generate_identities(cfg))
    from infra.local.environment import LocalEnvironment

    return LocalEnvironment(cfg.env, generate_identities(cfg))
