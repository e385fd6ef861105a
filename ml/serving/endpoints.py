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
from pathlib import Path

from core import settings
from core.endpoints import (  # noqa: F401 - the binding contract, re-exported for the serving side
    BINDING_FILE, RESERVED, Binding, InvalidEndpointName, check_name, config_dir, read_binding, table_dir, write_binding,
)
from ml.serving.errors import ServingError


class UnknownEndpoint(ServingError):
    """No endpoint of that name is bound in the environment."""


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
        except (ValueError, ServingError, InvalidEndpointName):
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
        from core.errors import did_you_mean

        known = [default.name, *named]
        raise UnknownEndpoint(f"no serving endpoint {name!r} in this environment{did_you_mean(name, known)} "
                              f"(endpoints: {', '.join(known)})")
    return named[name], config_dir(endpoint_root, name)
