"""`RandomSecret`: a generated password or token, kept encrypted in the stack state.

No provider plugins can be downloaded here (not even pulumi-random), so this is a small
Pulumi dynamic provider. The value is generated once, on create; only a new `length`
replaces it.
"""

from __future__ import annotations

import secrets

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class _RandomSecretProvider(ResourceProvider):
    def create(self, props):
        value = secrets.token_urlsafe(int(props["length"]))
        return CreateResult(id_=f"secret-{secrets.token_hex(4)}", outs={**props, "value": value})

    def diff(self, _id, olds, news):
        replaces = ["length"] if olds.get("length") != news.get("length") else []
        return DiffResult(changes=bool(replaces), replaces=replaces)


class RandomSecret(Resource, module="conveyor", name="RandomSecret"):
    """A random URL-safe string, generated once and kept (encrypted) in the stack state."""

    value: pulumi.Output[str]

    def __init__(self, name: str, length: int = 24, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(_RandomSecretProvider(), name, {"length": length, "value": None}, opts)
