"""Every principal of an environment, generated once per stack and handed to the platform.

Credentials are generated here, not by a platform, so every platform serves the same
identities: one login + bearer token per persona, plus the platform's own admin and
serving users and the tracking server's Flask secret.
"""

from __future__ import annotations

import pulumi

from infra.components.secrets import RandomSecret
from infra.config import StackConfig
from infra.environment import EnvironmentArgs, Identity

ADMIN_USERNAME = "conveyor-admin"
SERVING_USERNAME = "conveyor-serving"


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
