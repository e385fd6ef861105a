"""Helpers for steps that move values inside a `Located` document and must move their locations too."""

from __future__ import annotations

from typing import Any

from core.source import Located


def graft(doc: Located, src: Located, src_path: tuple, dst_path: tuple) -> None:
    """Copy the location entries under `src_path` in `src` to `dst_path` in `doc`."""
    n = len(src_path)
    for path, loc in list(src.locs.items()):
        if path[:n] == src_path:
            doc.locs[dst_path + path[n:]] = loc


def deep_merge(base: Any, over: Any) -> Any:
    """`over` merged onto `base`: mappings key by key, anything else replaced by `over`."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return over
