"""A throwaway resource kind added the way bundles/resources/README.md says, and a deploy of it.

Run as `python -m tests.bundles.widget_kind <workdir>` (a fresh interpreter: the kind is
registered before `bundles.models` builds the `resources:` section, as a line in
`bundles/resources/__init__.py` would be). Exits non-zero with the failed assertion.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from bundles.resources import KINDS, DeployContext, ResourceKind
from bundles.resources.spec import Strict


class Widget(Strict):
    name: str | None = None
    size: int = Field(1, ge=1)


class Widgets(ResourceKind):
    """Kept as documents in env storage, so the scenario can see what deploy did."""

    name = "widgets"
    model = Widget

    def exists(self, ctx: DeployContext, rec) -> bool:
        return ctx.store.read_object(self.name, rec.id) is not None

    def put(self, ctx: DeployContext, action, old):
        from bundles.envstore import ResourceRecord

        key = action.key.split(".", 1)[1]
        ctx.store.write_object(self.name, key, action.spec)
        return ResourceRecord(kind=self.name, key=action.key, name=action.name, id=key, fingerprint="")

    def delete(self, ctx: DeployContext, rec) -> None:
        ctx.store.delete_object(self.name, rec.id)

    def summary(self, ctx: DeployContext, rec) -> dict[str, Any]:
        return {"name": rec.name, "url": None, "size": rec.spec["size"]}


def scenario(work: Path) -> None:
    assert "bundles.models" not in sys.modules, "register before the models are built"
    KINDS.register(Widgets(), before="jobs")  # the registry line

    from bundles.engine import Engine
    from bundles.loader import load_bundle
    from bundles.models import RESOURCE_KINDS, schema
    from tests.bundles import mini

    assert "widgets" in RESOURCE_KINDS and "widgets" in schema()["$defs"]["Resources"]["properties"]
    root = mini.project(work / "project", "resources:\n  widgets:\n    big:\n      sise: 3\n")
    bundle, diags = load_bundle(root, "prod")
    assert bundle is None and any("unknown key 'sise'" in d.message and "did you mean 'size'" in d.message
                                  for d in diags), [d.render() for d in diags]

    (root / "resources" / "main.yml").write_text("resources:\n  widgets:\n    big:\n      size: 3\n")
    outputs = mini.outputs(work / "storage")
    engine = Engine(load_bundle(root, "prod")[0], outputs)
    plan = [(a.action, a.key) for a in engine.plan().actions]
    assert plan == [("create", "artifact"), ("create", "widgets.big")], plan
    engine.deploy()
    assert engine.store.read_object("widgets", "big") == {"name": "big", "size": 3}
    assert engine.summary()["resources"]["widgets"]["big"] == {"name": "big", "url": None, "size": 3}
    assert {a.action for a in engine.plan().actions} == {"unchanged"}

    engine.store.delete_object("widgets", "big")  # deleted by hand: `exists` notices
    [missing] = [a for a in engine.plan().actions if a.key == "widgets.big"]
    assert (missing.action, missing.reason) == ("create", "missing in the environment")
    engine.deploy()

    (root / "resources" / "main.yml").write_text("resources: {}\n")
    engine = Engine(load_bundle(root, "prod")[0], outputs)
    assert [(a.action, a.key) for a in engine.plan().actions if a.action != "unchanged"] == \
        [("delete", "widgets.big")]
    engine.deploy()
    assert engine.store.read_object("widgets", "big") is None


if __name__ == "__main__":
    scenario(Path(sys.argv[1]))
    print("ok")
