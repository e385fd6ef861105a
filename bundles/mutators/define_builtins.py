"""Step: settle the target's mode, the deploying user and git, and the `${bundle.*}` values.

Reads `state.target_cfg["mode"]`, `doc.data["bundle"]["name"]`, the git checkout at the
root and `state.user` (or `current_user()`); sets `state.mode`, `state.user`, `state.git`,
`state.name` and `state.builtins`.
"""

from __future__ import annotations

import getpass
import re

from bundles.gitinfo import git_info
from bundles.mutators.state import LoadState
from core import settings
from core.diagnostics import Diagnostic


def current_user() -> str:
    """The person deploying (dev-mode name prefix); CONVEYOR_USER overrides the OS user."""
    raw = settings.USER.get() or getpass.getuser()
    return re.sub(r"[^A-Za-z0-9_]", "_", raw).lower()


def apply(state: LoadState) -> list[Diagnostic]:
    state.mode = state.target_cfg.get("mode", "development")
    state.user = state.user or current_user()
    state.git = git_info(state.root)
    section = state.doc.data.get("bundle")
    state.name = str((section if isinstance(section, dict) else {}).get("name", "bundle"))
    state.builtins = {
        "bundle.name": state.name,
        "bundle.target": state.target,
        "bundle.mode": state.mode,
        "bundle.user": state.user,
        "bundle.git.commit": state.git.commit,
        "bundle.git.branch": state.git.branch or "",
    }
    return []
