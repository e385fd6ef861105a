"""The `Environment` contract every platform implements; nothing platform-specific lives here.

An environment is Storage + Tracking (MLflow server and registry) + Access (personas,
credentials) + Serving (the BentoML endpoint) + Jobs (scheduler). A platform decides only
*where* those run. It is one `Environment` subclass, named in `infra.platforms.PLATFORMS`:

    class MyEnvironment(Environment):
        platform = "mine"                                   # the `conveyor:platform` value

        @classmethod
        def preflight(cls, cfg: StackConfig) -> None: ...   # optional: refuse before any resource

        def __init__(self, name: str, args: EnvironmentArgs, opts=None):
            super().__init__("conveyor:mine:Environment", name, None, opts)
            ...                                             # storage, tracking, serving, jobs
            self.publish(tracking_uri=..., serving_url=..., storage_uri=..., storage=...,
                         credentials=credentials_output(args.personas))

Identities arrive generated (`infra.components.identities`), so every platform serves the
same logins and tokens for the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pulumi

from infra.config import StackConfig


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


class Environment(pulumi.ComponentResource):
    """What every platform exposes; the stack exports exactly these outputs.

    Contract of a subclass: `__init__(name, args: EnvironmentArgs, opts)` builds the env and
    ends with `publish(...)`; `storage` follows `core.contract.storage_layout(storage_uri)`;
    `credentials` is secret (`credentials_output`).
    """

    platform: ClassVar[str]  # the `conveyor:platform` value this class realises

    env_name: str
    tracking_uri: pulumi.Output[str]
    serving_url: pulumi.Output[str]
    storage_uri: pulumi.Output[str]
    storage: pulumi.Output[dict]
    credentials: pulumi.Output[dict]

    @classmethod
    def preflight(cls, cfg: StackConfig) -> None:
        """Raise `pulumi.RunError` before any resource exists when `cfg` cannot work here."""

    def publish(self, *, tracking_uri: pulumi.Input[str], serving_url: pulumi.Input[str],
                storage_uri: pulumi.Input[str], storage: pulumi.Input[dict],
                credentials: pulumi.Output[dict]) -> None:
        """Set the contract's outputs and register them as this component's outputs."""
        self.tracking_uri = pulumi.Output.from_input(tracking_uri)
        self.serving_url = pulumi.Output.from_input(serving_url)
        self.storage_uri = pulumi.Output.from_input(storage_uri)
        self.storage = pulumi.Output.from_input(storage)
        self.credentials = credentials
        self.register_outputs({
            "tracking_uri": self.tracking_uri, "serving_url": self.serving_url,
            "storage_uri": self.storage_uri, "storage": self.storage, "credentials": self.credentials,
        })

    def export(self) -> None:
        pulumi.export("env", self.env_name)
        pulumi.export("platform", self.platform)
        pulumi.export("tracking_uri", self.tracking_uri)
        pulumi.export("serving_url", self.serving_url)
        pulumi.export("storage_uri", self.storage_uri)
        pulumi.export("storage", self.storage)
        pulumi.export("credentials", self.credentials)


def credentials_output(personas: dict[str, Identity]) -> pulumi.Output:
    """persona → {username, password, token}, as one secret output (the `credentials` shape)."""
    return pulumi.Output.secret(
        pulumi.Output.all(
            **{
                name: pulumi.Output.all(username=i.username, password=i.password, token=i.token)
                for name, i in personas.items()
            }
        )
    )
