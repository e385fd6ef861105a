"""The binding of a serving endpoint: which use case and registered model it serves.

This file format is the contract between `conveyor bundle deploy` (the `serving_endpoints`
resource writes it) and the environment's serving process (which watches for it): an
endpoint exists when its config dir holds `serving.json`. Both sides import it from here,
so neither imports the other.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from core.errors import ConveyorError
from core.files import atomic_write


class InvalidEndpointName(ConveyorError):
    """An endpoint name that cannot be a route's first path segment."""


BINDING_FILE = "serving.json"
# the rollout state serving follows (`ml.serving.endpoint_config` writes it; deploy reads whether it has a champion)
CONFIG_FILE = "endpoint.json"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# first path segments the process itself uses; an endpoint cannot be named after one
RESERVED = frozenset({"models", "predict", "candidate", "status", "livez", "readyz", "healthz", "metrics", "docs",
                      "docs.json", "schema.json", "openapi.json", "static", "assets"})


class Binding(BaseModel):
    """What one endpoint serves: a use case's requests, scored by versions of one registered model."""

    name: str = Field(description="the endpoint's name: its routes' first path segment")
    use_case: str = Field(description="the use case whose declaration gives the request/response schema")
    model: str | None = Field(None, description="the registered model whose versions it serves")
    default: bool = Field(False, description="served at /predict (one per environment)")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        check_name(name)
        return name


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name in RESERVED:
        raise InvalidEndpointName(f"invalid endpoint name {name!r}: lowercase letters, digits, '_' or '-', "
                           f"not one of {', '.join(sorted(RESERVED))}")
    return name


def config_dir(endpoint_root: Path, name: str | None = None) -> Path:
    """Where endpoint `name` keeps `endpoint.json` (None: the default endpoint)."""
    return Path(endpoint_root) if name is None else Path(endpoint_root) / check_name(name)


def table_dir(inference_root: Path, name: str | None = None) -> Path:
    """Where endpoint `name` writes its inference table (None: the default endpoint)."""
    return Path(inference_root) if name is None else Path(inference_root) / check_name(name)


def read_binding(directory: Path) -> Binding | None:
    path = Path(directory) / BINDING_FILE
    if not path.is_file():
        return None
    return Binding.model_validate_json(path.read_text())


def write_binding(endpoint_root: Path, binding: Binding) -> Path:
    """Bind an endpoint (idempotent: an unchanged binding leaves the file, and its watchers, alone)."""
    directory = Path(endpoint_root) if binding.default else config_dir(endpoint_root, binding.name)
    directory.mkdir(parents=True, exist_ok=True)
    if read_binding(directory) != binding:
        atomic_write(directory / BINDING_FILE, binding.model_dump_json(indent=2))
    return directory
