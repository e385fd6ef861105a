"""A Bento of the endpoint that serves one model version, fixed when it was built.

`ml.serving.bento.build_pinned` makes it from the same service and request schema as every
env endpoint, adding `pinned_model.json` at the root of the Bento's sources: a BentoML model
tag (carried by the Bento) and how to serve it. A worker that finds the file serves that model
as its champion and follows no endpoint config (`engine.get_engine`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ml.serving.endpoint_config import EndpointConfig, ServedModel

PIN_FILE = "pinned_model.json"
# The root of the sources: the Bento's `src/` when served from a Bento, the repo otherwise.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
BENTOML_SCHEME = "bentoml:"


def pin_document(*, bentoml_model: str, name: str, version: str, threshold: float, use_case: str | None = None) -> str:
    """The contents of `pinned_model.json` for a BentoML model tag (`use_case`: its request schema)."""
    doc = {"bentoml_model": bentoml_model, "name": name, "version": version, "threshold": threshold}
    if use_case:
        doc["use_case"] = use_case
    return json.dumps(doc, indent=2)


def read_pin(root: Path = SOURCE_ROOT) -> EndpointConfig | None:
    """The fixed endpoint config of a pinned Bento, or None when these sources pin nothing."""
    path = root / PIN_FILE
    if not path.is_file():
        return None
    pin = json.loads(path.read_text())
    champion = ServedModel(name=pin["name"], version=str(pin["version"]),
                           uri=f"{BENTOML_SCHEME}{pin['bentoml_model']}", threshold=pin.get("threshold", 0.5))
    return EndpointConfig(champion=champion, state="serving", reason=f"pinned by {PIN_FILE}")


def read_pin_use_case(root: Path = SOURCE_ROOT) -> str | None:
    """The use case a pinned Bento serves (None: the default endpoint's)."""
    path = root / PIN_FILE
    return json.loads(path.read_text()).get("use_case") if path.is_file() else None


def bentoml_tag(uri: str) -> str | None:
    """The BentoML model tag of a `bentoml:<tag>` URI, else None."""
    return uri[len(BENTOML_SCHEME):] if uri.startswith(BENTOML_SCHEME) else None
