"""The mutable state the loading steps pass along: the document and what was decided about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundles.gitinfo import GitInfo
from bundles.models import BundleFile
from core.diagnostics import Diagnostic
from core.source import Located


@dataclass
class Variables:
    """Resolved bundle variables: `values` by name, `missing` (declared, no value), `used` by `${var.*}`."""

    values: dict[str, Any] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    declared: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)


@dataclass
class LoadState:
    """One `load_bundle` call in progress.

    The first four fields are the request; every other field is filled by the step that
    owns it (see `bundles/mutators/README.md`) and read by the steps after it. A step that
    makes the rest meaningless (no document, no target) sets `stopped`.
    """

    root: Path
    requested_target: str | None = None
    cli_vars: dict[str, str] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # the deploying user; `builtins` fills it when the caller did not
    doc: Located | None = None  # the merged document, mutated in place by the steps
    target: str | None = None  # the selected target's name
    target_cfg: dict[str, Any] = field(default_factory=dict)  # its raw mapping in `doc`
    mode: str = "development"
    name: str = "bundle"
    git: GitInfo | None = None
    builtins: dict[str, Any] = field(default_factory=dict)  # `${bundle.*}` values
    vars: Variables = field(default_factory=Variables)
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, key) -> final name
    parsed: BundleFile | None = None  # the typed model, when the document validates
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stopped: bool = False

    @property
    def resources(self) -> dict:
        """`doc.data["resources"]` when it is a mapping, else an empty mapping."""
        res = self.doc.data.get("resources") if self.doc is not None else None
        return res if isinstance(res, dict) else {}
