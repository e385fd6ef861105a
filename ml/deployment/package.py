"""Package a registered model version as a BentoML model + a pinned Bento in the env's BentoML home.

BENTOML_HOME is the env's `storage.bentos` (models under `models/`, Bentos under
`bentos/`), so every env has its own store. The Bento is the env endpoint's own service
(`ml.serving.service`, same request schema) pinned to this model (`ml.serving.bento.build_pinned`).
Idempotent: an existing model/Bento with the same tag is reused.
"""

from __future__ import annotations

from pathlib import Path

from ml.serving.bento import build_pinned, use_home


def _label(value: str) -> str:
    """BentoML labels allow [a-z0-9-_.]; keep them readable."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(value).lower())
    return cleaned[:63] or "none"


def package(sk_model, *, bentoml_home: Path, registered_model: str, version: str, data_version: str,
            git_sha: str, service: str, threshold: float, use_case: str | None = None,
            description: str = "") -> dict[str, str]:
    """Import `sk_model` into the store and build a Bento serving it; returns the tags.

    `service` names the Bento (`<service>:v<version>-<git sha>`).
    """
    bentoml_home.mkdir(parents=True, exist_ok=True)
    use_home(bentoml_home)
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
    bento = build_pinned(
        f"{service}:v{_label(version)}-{_label(git_sha)[:12]}", bentoml_model=str(model.tag),
        name=registered_model, version=str(version), threshold=threshold, labels=labels, use_case=use_case,
        description=f"{description or registered_model}: serving {registered_model} v{version} (data {data_version})",
    )
    return {"bentoml_model": str(model.tag), "bento": bento, "bentoml_home": str(bentoml_home)}
