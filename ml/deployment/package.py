"""A registered model version in the env's BentoML model store: what the endpoint serves.

BENTOML_HOME is the env's `storage.bentos` (models under `models/`, the endpoint's Bentos
under `bentos/`), so every env has its own store and `BENTOML_HOME=<storage.bentos> bentoml
models list` shows what it can serve. A version is stored once as `<registered model>:v<version>`
with labels `registered_model`, `model_version`, `data_version`, `git_sha` and, in its metadata,
the MLflow model URI, the threshold it was trained with and the input columns of its signature.
The endpoint loads it by that tag (`ml.serving.models`). Idempotent: an existing tag is reused.
"""

from __future__ import annotations

from pathlib import Path

from ml.serving.bento import use_home


def _label(value: str) -> str:
    """BentoML labels and tags allow [a-z0-9-_.]; keep them readable."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(value).lower())
    return cleaned[:63] or "none"


def model_tag(registered_model: str, version: str) -> str:
    return f"{_label(registered_model)}:v{_label(version)}"


def _signature_columns(uri: str) -> list[str]:
    from mlflow.models import get_model_info

    try:
        sig = get_model_info(uri).signature
    except Exception:  # no signature: the endpoint uses the use case's feature columns
        return []
    names = sig.inputs.input_names() if sig is not None and sig.inputs is not None else []
    return [n for n in names if isinstance(n, str)]


def import_model(registered_model: str, version: str, *, bentoml_home: Path, data_version: str | None = None,
                 git_sha: str | None = None, threshold: float = 0.5, use_case: str | None = None,
                 sk_model=None, model_uri: str | None = None) -> str:
    """Put `models:/<registered_model>/<version>` into the store at `bentoml_home`; returns its tag.

    `sk_model`: the loaded scikit-learn model (else loaded from the registry); `model_uri`: where
    to read its signature (default: the registry's version). Data version and
    git sha default to the model version's MLflow tags (needs MLFLOW_* in the environment).
    """
    bentoml_home.mkdir(parents=True, exist_ok=True)
    use_home(bentoml_home)
    import bentoml
    from bentoml.exceptions import NotFound

    tag = model_tag(registered_model, version)
    try:
        return str(bentoml.models.get(tag).tag)
    except NotFound:
        pass
    import mlflow.sklearn

    uri = f"models:/{registered_model}/{version}"
    if data_version is None or git_sha is None:
        tags = mlflow.MlflowClient().get_model_version(registered_model, str(version)).tags
        data_version = data_version or tags.get("data_version", "unknown")
        git_sha = git_sha or tags.get("git_sha", "unknown")
    labels = {"registered_model": _label(registered_model), "model_version": _label(version),
              "data_version": _label(data_version), "git_sha": _label(git_sha)}
    if use_case:
        labels["use_case"] = _label(use_case)
    model = bentoml.sklearn.save_model(
        tag, sk_model if sk_model is not None else mlflow.sklearn.load_model(uri), labels=labels,
        metadata={"model_uri": uri, "threshold": threshold, "columns": _signature_columns(model_uri or uri)})
    return str(model.tag)
