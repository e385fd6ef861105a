"""What a resource kind is, what it is handed while deploying, and the registry of kinds.

A kind is one small, stateless object: the pydantic model of one entry under
`resources.<kind>` (what `validate` checks and `bundle schema` documents), how a desired
spec is made from it, and the four things a deploy does with one resource — `exists`
(drift check), `put` (create or update), `delete`, `summary`. Everything a kind needs
from the deploy (the bundle, the env, MLflow, env storage, the job backend) comes in a
`DeployContext`, so a kind module imports nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, create_model

from bundles.errors import BundleError

if TYPE_CHECKING:
    from bundles.artifact import CodeArtifact
    from bundles.backends import JobBackend
    from bundles.envstore import DeploymentState, DeploymentStore, ResourceRecord
    from bundles.loader import ResolvedBundle
    from bundles.mlflow_api import MlflowApi
    from bundles.planner import Action
    from core.contract import EnvironmentOutputs

Desired = dict[str, tuple[str | None, dict[str, Any]]]  # resource key -> (final name, spec)


@dataclass
class DeployContext:
    """One deploy (or plan, destroy, summary) of one bundle target into one environment."""

    bundle: ResolvedBundle
    outputs: EnvironmentOutputs
    persona: str  # whose credentials deploy uses
    api: MlflowApi
    store: DeploymentStore
    jobs: JobBackend  # where the env runs and schedules jobs
    artifact: CodeArtifact | None = None  # the code wheel, once `plan` described it

    @property
    def deployment_id(self) -> str:
        return self.bundle.deployment_id()

    def username(self, principal: str) -> str:
        """The env's user name of persona `principal`; a BundleError names the known ones."""
        cred = self.outputs.credentials.get(principal)
        if cred is None:
            known = ", ".join(sorted(self.outputs.credentials))
            raise BundleError(f"grant to {principal!r}: no such persona in environment {self.outputs.env!r} "
                              f"(known: {known})")
        return cred.username


class ResourceKind:
    """One kind of resource. Subclass it in `bundles/resources/<kind>.py`; register it once.

    Class attributes: `name` is the key under `resources:` and the prefix of resource keys
    in state (`<name>.<key>`); `model` is the pydantic model of one entry (None for a kind
    the bundle does not declare, such as the code artifact).
    """

    name: ClassVar[str]
    model: ClassVar[type[BaseModel] | None] = None
    description: ClassVar[str] = ""

    # --- plan ------------------------------------------------------------------------------
    def desired(self, bundle: ResolvedBundle, artifact_hash: str) -> Desired:
        """Every resource of this kind the target should have: key -> (name, spec)."""
        out: Desired = {}
        for key, entry in getattr(bundle.resources, self.name).items():
            spec = self.spec(entry, bundle)
            out[f"{self.name}.{key}"] = (spec.get("name"), spec)
        return out

    def spec(self, entry: BaseModel, bundle: ResolvedBundle) -> dict[str, Any]:
        """Everything deploy writes for one entry; its fingerprint decides update vs unchanged."""
        return entry.model_dump(mode="json")

    def check(self, ctx: DeployContext, key: str, spec: dict[str, Any]) -> None:
        """Raise a BundleError before anything is applied when this spec cannot deploy here."""

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        """Whether a recorded resource is still really there (repairs manual deletes)."""
        return True

    # --- apply -----------------------------------------------------------------------------
    def put(self, ctx: DeployContext, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        """Create or update the resource; return its record (the engine stores spec + fingerprint)."""
        raise NotImplementedError

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        """Remove what `put` created (and let go of what it adopted)."""
        raise NotImplementedError

    def record(self, state: DeploymentState, rec: ResourceRecord | None) -> None:
        """Mirror an applied put (`rec`) or delete (None) into deployment-level state fields."""

    # --- summary ---------------------------------------------------------------------------
    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any] | None:
        """The `bundle summary` entry of one deployed resource; None leaves it out."""
        return {"name": rec.name, "url": None}


class Registry:
    """The resource kinds, in apply order (deletes run in reverse). Built once, in
    `bundles/resources/__init__.py`; everything that lists kinds asks it."""

    def __init__(self, kinds: list[ResourceKind]):
        self._kinds: list[ResourceKind] = []
        for kind in kinds:
            self.register(kind)

    def register(self, kind: ResourceKind, before: str | None = None) -> None:
        """Add a kind (at the end, or before kind `before`)."""
        if any(k.name == kind.name for k in self._kinds):
            raise ValueError(f"resource kind {kind.name!r} is registered twice")
        at = self.names().index(before) if before else len(self._kinds)
        self._kinds.insert(at, kind)

    def unregister(self, name: str) -> None:
        self._kinds = [k for k in self._kinds if k.name != name]

    def __iter__(self) -> Iterator[ResourceKind]:
        return iter(list(self._kinds))

    def __contains__(self, name: object) -> bool:
        return any(k.name == name for k in self._kinds)

    def get(self, name: str) -> ResourceKind:
        for kind in self._kinds:
            if kind.name == name:
                return kind
        raise BundleError(f"unknown resource kind {name!r} (known: {', '.join(self.names())})")

    def names(self) -> tuple[str, ...]:
        """Every kind, in apply order."""
        return tuple(k.name for k in self._kinds)

    def declared(self) -> tuple[str, ...]:
        """The kinds a bundle declares under `resources:` (each entry has a `name`)."""
        return tuple(k.name for k in self._kinds if k.model is not None)

    def declared_view(self) -> KindNames:
        """`declared()` as a constant that stays true when a kind is registered later."""
        return KindNames(self)

    def rank(self, name: str) -> int:
        """Apply position of a kind; unknown kinds (left in an old state) go last."""
        names = self.names()
        return names.index(name) if name in names else len(names)

    def resources_model(self, base: type[BaseModel]) -> type[BaseModel]:
        """The `resources:` section: one `{key: <kind model>}` field per declared kind."""
        fields: dict[str, Any] = {k.name: (dict[str, k.model], {}) for k in self._kinds if k.model is not None}
        return create_model("Resources", __base__=base, **fields)


class KindNames(Sequence[str]):
    """A read-only, live view of a registry's declared kind names (compares equal to the tuple)."""

    def __init__(self, registry: Registry):
        self._registry = registry

    def __getitem__(self, index):  # type: ignore[override]
        return self._registry.declared()[index]

    def __len__(self) -> int:
        return len(self._registry.declared())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))
