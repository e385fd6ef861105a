"""YAML loading that remembers where every key and item was written (libyaml's composer:
fast, and every node carries its line).

Validation must point at `file:line`, so the raw tree is kept as plain Python
values plus a map from each value's path (tuple of keys / indexes) to its `Loc`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.diagnostics import Diagnostic, Loc

Path_ = tuple


@dataclass
class Located:
    """A plain YAML document and the location of each path inside it."""

    data: Any
    locs: dict[tuple, Loc] = field(default_factory=dict)
    file: str = ""

    def loc(self, path: tuple) -> Loc | None:
        """The location of `path`, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.locs.get(tuple(path[:end]))
            if found:
                return found
        return None


def _plain(node: yaml.Node, path: tuple, file: str, locs: dict[tuple, Loc], ctor: Any,
           diags: list[Diagnostic]) -> Any:
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict = {}
        for key_node, value_node in node.value:
            key = str(ctor.construct_object(key_node, deep=True))
            loc = Loc(file, key_node.start_mark.line + 1)
            if key in out:
                diags.append(Diagnostic("error", f"duplicate key {key!r} (first at line {locs[path + (key,)].line})", loc))
                continue
            locs[path + (key,)] = loc
            out[key] = _plain(value_node, path + (key,), file, locs, ctor, diags)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            locs[path + (i,)] = Loc(file, item.start_mark.line + 1)
            items.append(_plain(item, path + (i,), file, locs, ctor, diags))
        return items
    value = ctor.construct_object(node, deep=True)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return str(node.value)  # keep dates as written; no field of ours is a date
    return value


def load_yaml(path: Path, display: str) -> tuple[Located | None, list[Diagnostic]]:
    """Parse one YAML file (libyaml when available); syntax errors become diagnostics."""
    try:
        text = path.read_text()
    except OSError as exc:
        return None, [Diagnostic("error", f"cannot read {display}: {exc.strerror}", Loc(display, 1))]
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        locs: dict[tuple, Loc] = {(): Loc(display, 1)}
        diags: list[Diagnostic] = []
        data = _plain(node, (), display, locs, loader, diags) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        return None, [Diagnostic("error", f"YAML syntax error: {problem}", Loc(display, line))]
    except yaml.YAMLError as exc:
        return None, [Diagnostic("error", f"YAML error: {str(exc).splitlines()[0]}", Loc(display, 1))]
    finally:
        loader.dispose()
    if diags:
        return None, diags
    return Located(data=data, locs=locs, file=display), []
