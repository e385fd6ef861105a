"""Pulumi mocks for running the program in-process (`pulumi.runtime.set_mocks`).

Every resource is "created" with its inputs as its outputs; a `RandomSecret` gets a value
derived from its name, so secrets are deterministic and readable in assertions.
"""

from __future__ import annotations

import pulumi


class Mocks(pulumi.runtime.Mocks):
    """Records every resource the program creates, in creation order."""

    def __init__(self):
        self.created: list[pulumi.runtime.MockResourceArgs] = []

    @property
    def types(self) -> list[str]:
        return [r.typ for r in self.created]

    def of_type(self, suffix: str) -> list[pulumi.runtime.MockResourceArgs]:
        """The created resources whose type token ends with `suffix` (e.g. `":LocalFile"`)."""
        return [r for r in self.created if r.typ.endswith(suffix)]

    def new_resource(self, args):
        outputs = dict(args.inputs)
        if args.typ.endswith(":RandomSecret"):
            outputs["value"] = f"generated-{args.name}"
        self.created.append(args)
        return f"{args.name}-id", outputs

    def call(self, args):
        return {}
