"""Step: validate the final document against the typed models (`bundles.models.BundleFile`).

Reads `doc.data`; sets `state.parsed` when it validates. Each pydantic error becomes one
diagnostic at the file:line of the offending value, worded for a bundle author (unknown
keys get a did-you-mean from the model's fields).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from bundles.models import BundleFile
from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic
from core.errors import did_you_mean
from core.source import Located


def apply(state: LoadState) -> list[Diagnostic]:
    try:
        # the root lets a resource check what it references inside this bundle (e.g. a feature
        # table's source use case), not in whatever project the process runs from
        state.parsed = BundleFile.model_validate(state.doc.data, context={"root": str(state.root)})
    except ValidationError as exc:
        return model_diagnostics(state.doc, exc)
    return []


def model_diagnostics(doc: Located, exc: ValidationError) -> list[Diagnostic]:
    """One diagnostic per offending path in `doc` (pydantic reports union branches separately)."""
    grouped: dict[tuple, list[dict]] = {}
    for err in exc.errors(include_url=False):
        grouped.setdefault(_data_path(doc.data, err["loc"]), []).append(err)
    out = []
    for path, errs in grouped.items():
        kinds = {e["type"] for e in errs}
        if kinds == {"extra_forbidden"}:
            key = path[-1]
            model = _model_at(path[:-1])
            choices = list(model.model_fields) if model else []
            where = f" in {_dotted(path[:-1])}" if path[:-1] else ""
            out.append(Diagnostic("error", f"unknown key {key!r}{where}{did_you_mean(str(key), choices)}", doc.loc(path)))
        elif kinds == {"missing"}:
            out.append(Diagnostic("error", f"{_dotted(path[:-1])}: missing required key {path[-1]!r}", doc.loc(path[:-1])))
        elif len(errs) > 1 and all(e["type"].endswith("_type") or e["type"].endswith("_parsing") for e in errs):
            wanted = sorted({e["type"].split("_")[0] for e in errs})
            out.append(Diagnostic("error", f"{_dotted(path)}: wrong type, expected {' or '.join(wanted)}", doc.loc(path)))
        else:
            out.append(Diagnostic("error", f"{_dotted(path)}: {_message(errs[0], path)}", doc.loc(path)))
    return out


# --- from pydantic's error locations back to document paths --------------------------------

_UNION_TAGS = {"str", "int", "float", "bool"}


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _UNION_TAGS or part[:1].isupper() or "[" in part)


def _data_path(data: Any, loc: tuple) -> tuple:
    """Drop the union-branch tags pydantic inserts into `loc` (e.g. 'str', 'list[...]')."""
    out: list = []
    node = data
    for part in loc:
        if _is_union_tag(part) and not (isinstance(node, dict) and part in node):
            continue
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, (dict, list)) and not isinstance(part, str):
            out.append(part)
            node = None
        elif node is None or not isinstance(node, (dict, list)):
            continue
        else:
            out.append(part)  # a key that is not there: extra or missing key
            node = None
    return tuple(out)


def _unwrap(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(tp):
            out.extend(_unwrap(arg))
        return out
    return [tp]


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path` (for did-you-mean)."""
    current: list[Any] = [BundleFile]
    for part in path:
        nxt: list[Any] = []
        for tp in current:
            for t in _unwrap(tp):
                origin = typing.get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(part, str):
                    if part in t.model_fields:
                        nxt.append(t.model_fields[part].annotation)
                elif origin is dict:
                    nxt.append(typing.get_args(t)[1])
                elif origin is list and isinstance(part, int):
                    nxt.append(typing.get_args(t)[0])
        current = nxt
    for tp in current:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                return t
    return None


# --- wording ----------------------------------------------------------------------------------


def _dotted(path: tuple) -> str:
    if len(path) > 1 and path[0] == "resources":
        path = path[1:]
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


_FRIENDLY = {
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "list_type": "expected a list",
    "string_type": "expected a string",
}


def _message(err: dict, path: tuple) -> str:
    kind = err["type"]
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "string_pattern_mismatch":
        what = "a Python module path (like ml.training.train)" if path and path[-1] == "module" else \
            "a name of letters, digits, _ . and - "
        return f"{err.get('input')!r} is not {what.strip()}"
    return err["msg"].removeprefix("Value error, ")
