"""Which serving endpoints an environment has, and where each one keeps its state.

One serving process per environment serves several endpoints at the same time. Each is bound
to one use case and one registered model, and has its own endpoint config (champion,
challenger, rollout, previous champions) and its own inference table:

| endpoint | config dir | inference table | routes |
|---|---|---|---|
| the default one | `<storage.endpoint>/` | `<storage.inference_table>/` | `/predict`, `/candidate/predict`, `/status` |
| `<name>` | `<storage.endpoint>/<name>/` | `<storage.inference_table>/<name>/` | `/<name>/predict`, `/<name>/candidate/predict`, `/<name>/status`, `/<name>/openapi.json` |

An endpoint exists when its config dir holds `serving.json` (a `Binding`), written by
`conveyor bundle deploy` (the `serving_endpoints` resource) and by `update_endpoint`. The
default endpoint's binding is optional: without one it serves `$CONVEYOR_SERVING_USE_CASE`.
The serving process watches these files, so a bundle deploy decides what it serves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from core import settings
from core.files import atomic_write
from ml.serving.errors import ServingError

BINDING_FILE = "serving.json"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# first path segments the process itself uses; an endpoint cannot be named after one
RESERVED = frozenset({"models", "predict", "candidate", "status", "livez", "readyz", "healthz", "metrics", "docs",
                      "docs.json", "schema.json", "openapi.json", "static", "assets"})


class UnknownEndpoint(ServingError):
    """No endpoint of that name is bound in the environment."""


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
        raise ServingError(f"invalid endpoint name {name!r}: lowercase letters, digits, '_' or '-', "
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


def default_binding(endpoint_root: Path | None) -> Binding:
    """The default endpoint's binding: its `serving.json`, else `$CONVEYOR_SERVING_USE_CASE`'s."""
    found = read_binding(endpoint_root) if endpoint_root is not None else None
    if found is not None:
        return found.model_copy(update={"default": True})
    use_case = settings.SERVING_USE_CASE.get()
    return Binding(name=f"{use_case.replace('_', '-')}-endpoint", use_case=use_case, default=True)


def named_bindings(endpoint_root: Path | None) -> dict[str, Binding]:
    """`{name: binding}` of every named endpoint under `endpoint_root`."""
    if endpoint_root is None or not Path(endpoint_root).is_dir():
        return {}
    out = {}
    for path in sorted(Path(endpoint_root).glob(f"*/{BINDING_FILE}")):
        try:
            binding = Binding.model_validate(json.loads(path.read_text()))
        except (ValueError, ServingError):
            continue  # half-written or foreign file: the next poll sees the finished one
        if binding.name == path.parent.name and not binding.default:
            out[binding.name] = binding
    return out


def resolve(endpoint_root: Path, name: str | None) -> tuple[Binding, Path]:
    """(binding, config dir) of endpoint `name`; None or the default's name → the default endpoint."""
    default = default_binding(endpoint_root)
    if name is None or name == default.name:
        return default, Path(endpoint_root)
    named = named_bindings(endpoint_root)
    if name not in named:
        from bundles.errors import did_you_mean

        known = [default.name, *named]
        raise UnknownEndpoint(f"no serving endpoint {name!r} in this environment{did_you_mean(name, known)} "
                              f"(endpoints: {', '.join(known)})")
    return named[name], config_dir(endpoint_root, name)
