"""The commit and branch a deployment comes from (`${bundle.git.*}`, production branch check)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core import settings


@dataclass(frozen=True)
class GitInfo:
    commit: str
    branch: str | None
    dirty: bool


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_info(root: Path) -> GitInfo:
    """HEAD of the repo holding `root`; `unknown` outside a git checkout."""
    commit = _git(root, "rev-parse", "HEAD") or "unknown"
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    if branch == "HEAD":  # detached HEAD (CI checkouts): trust the CI's branch name if it gives one
        branch = settings.GIT_BRANCH.get() or os.environ.get("GITHUB_REF_NAME") or None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, branch=branch, dirty=bool(status))
