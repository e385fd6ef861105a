"""YAML loading that remembers where every key and item was written.

Validation must point at `file:line`, so the raw tree is kept as plain Python
values plus a map from each value's path (tuple of keys / indexes) to its `Loc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from bundles.errors import Diagnostic, Loc

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


def _plain(node: Any, path: tuple, file: str, locs: dict[tuple, Loc]) -> Any:
    if isinstance(node, CommentedMap):
        out = {}
        for key in node:
            line = node.lc.key(key)[0] + 1
            locs[path + (str(key),)] = Loc(file, line)
            out[str(key)] = _plain(node[key], path + (str(key),), file, locs)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, item in enumerate(node):
            line = node.lc.item(i)[0] + 1
            locs[path + (i,)] = Loc(file, line)
            out_list.append(_plain(item, path + (i,), file, locs))
        return out_list
    if isinstance(node, str):
        return str(node)
    if hasattr(node, "__float__") and not isinstance(node, (bool, int)):
        return float(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    return node


def load_yaml(path: Path, display: str) -> tuple[Located | None, list[Diagnostic]]:
    """Parse one YAML file; syntax errors become diagnostics, not exceptions."""
    try:
        text = path.read_text()
    except OSError as exc:
        return None, [Diagnostic("error", f"cannot read {display}: {exc.strerror}", Loc(display, 1))]
    yaml = YAML(typ="rt")
    try:
        node = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        problem = problem.split(" with value ")[0]  # duplicate keys: drop the echoed value
        return None, [Diagnostic("error", f"YAML syntax error: {problem}", Loc(display, line))]
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. duplicate keys)
        return None, [Diagnostic("error", f"YAML error: {str(exc).splitlines()[0]}", Loc(display, 1))]
    locs: dict[tuple, Loc] = {(): Loc(display, 1)}
    data = _plain(node, (), display, locs) if node is not None else {}
    return Located(data=data, locs=locs, file=display), []
