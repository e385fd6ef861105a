"""A bundle and an environment small enough that deploying them needs no MLflow server:
no experiments or registered models, one code package, env storage in a temp dir."""

from __future__ import annotations

from pathlib import Path

from core.contract import Credential, EnvironmentOutputs, storage_layout

BUNDLE_YML = """\
bundle:
  name: mini
include:
  - resources/*.yml
targets:
  prod:
    mode: production
    default: true
    run_as: ci
"""


def project(root: Path, resources: str) -> Path:
    """`root` as a bundle project whose `resources/main.yml` is `resources`."""
    (root / "resources").mkdir(parents=True)
    (root / "bundle.yml").write_text(BUNDLE_YML)
    (root / "resources" / "main.yml").write_text(resources)
    (root / "mini_tasks").mkdir()
    (root / "mini_tasks" / "__init__.py").write_text("")
    (root / "mini_tasks" / "main.py").write_text("print('hello')\n")
    return root


def outputs(storage: Path, platform: str = "local") -> EnvironmentOutputs:
    """An env whose MLflow is never called (nothing in the bundle lives there)."""
    storage.mkdir(parents=True, exist_ok=True)
    return EnvironmentOutputs(
        env="prod", platform=platform, tracking_uri="http://127.0.0.1:9", serving_url="http://127.0.0.1:9",
        storage_uri=storage.as_uri(), storage=storage_layout(storage.as_uri()),
        credentials={"ci": Credential(username="ci-user", password="not-used", token="not-used")},
    )
