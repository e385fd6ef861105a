"""Package a registered model version as a BentoML model + Bento in the env's BentoML home.

BENTOML_HOME is the env's `storage.bentos` (models under `models/`, Bentos under
`bentos/`), so every env has its own store. Idempotent: an existing model/Bento with
the same tag is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.metadata import version as pkg_version
from pathlib import Path

SERVICE_SOURCE = Path(__file__).with_name("bento_service.py")
FEATURES_SOURCE = Path(__file__).resolve().parents[1] / "features.py"


def _label(value: str) -> str:
    """BentoML labels allow [a-z0-9-_.]; keep them readable."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(value).lower())
    return cleaned[:63] or "none"


def package(sk_model, *, bentoml_home: Path, registered_model: str, version: str, data_version: str,
            git_sha: str, service: str, threshold: float) -> dict[str, str]:
    """Import `sk_model` into the store and build a Bento serving it; returns the tags."""
    bentoml_home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(bentoml_home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    import bentoml
    from bentoml.exceptions import NotFound

    labels = {"registered_model": _label(registered_model), "model_version": _label(version),
              "data_version": _label(data_version), "git_sha": _label(git_sha)}
    model_tag = f"{_label(registered_model)}:v{_label(version)}"
    try:
        model = bentoml.models.get(model_tag)
    except NotFound:
        model = bentoml.sklearn.save_model(model_tag, sk_model, labels=labels,
                                           metadata={"model_uri": f"models:/{registered_model}/{version}", "threshold": threshold})
    bento_tag = f"{service}:v{_label(version)}-{_label(git_sha)[:12]}"
    try:
        bento = bentoml.bentos.get(bento_tag)
    except NotFound:
        with tempfile.TemporaryDirectory(prefix="conveyor-bento-") as tmp:
            ctx = Path(tmp)
            shutil.copyfile(SERVICE_SOURCE, ctx / "service.py")
            shutil.copyfile(FEATURES_SOURCE, ctx / "fraud_features.py")
            (ctx / "model.json").write_text(json.dumps({"bentoml_model": str(model.tag), "service": service, "threshold": threshold}))
            bento = bentoml.bentos.build(
                "service:FraudDetector",
                name=service,
                version=bento_tag.split(":", 1)[1],
                labels=labels,
                description=f"Fraud detector serving {registered_model} v{version} (data {data_version})",
                include=["service.py", "fraud_features.py", "model.json"],
                python={"packages": [f"{p}=={pkg_version(p)}" for p in ("scikit-learn", "pandas", "numpy", "pydantic")],
                        "lock_packages": False},
                build_ctx=str(ctx),
            )
    return {"bentoml_model": str(model.tag), "bento": str(bento.tag), "bentoml_home": str(bentoml_home)}
