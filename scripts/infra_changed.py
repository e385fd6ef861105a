"""Decide whether a deploy must run `pulumi up` for a stack, and record when it did.

CI runs `pulumi up` only when the environment's definition changed: `infra/`,
`Pulumi.yaml` or `Pulumi.<stack>.yaml`. "Changed" is measured against the commit
last *applied* to that stack (kept as a Pulumi stack tag), not against the previous
push: GitHub drops queued runs of a concurrency group, so a push that changed infra
may never have deployed, and diffing against `github.event.before` would miss it.

    python scripts/infra_changed.py staging              # prints why; sets `changed` output
    python scripts/infra_changed.py staging --force true # always changed (manual dispatch)
    python scripts/infra_changed.py staging --record     # after a successful `pulumi up`

Anything uncertain (no record, unknown commit, git error) counts as changed:
an unneeded `pulumi up` is a no-op, a skipped needed one leaves the env stale.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAG = "conveyor-infra-commit"


def infra_patterns(stack: str) -> list[str]:
    return ["infra/*", "Pulumi.yaml", f"Pulumi.{stack}.yaml"]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def head_commit() -> str:
    proc = _git("rev-parse", "HEAD")
    if proc.returncode != 0:
        raise SystemExit(f"infra_changed: not a git checkout: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _pulumi(*args: str) -> subprocess.CompletedProcess[str]:
    from conveyor.stack import pulumi_bin
    from conveyor.toolchain import pulumi_env

    return subprocess.run(
        [pulumi_bin(), *args, "--non-interactive"], cwd=ROOT, env=pulumi_env(), capture_output=True, text=True
    )


def last_applied(stack: str) -> tuple[str | None, str]:
    """The commit recorded by the last successful CI `pulumi up`, or None and why not."""
    proc = _pulumi("stack", "tag", "get", TAG, "--stack", stack)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return None, detail[-1] if detail else "no record"
    return proc.stdout.strip() or None, "recorded"


def changed_files(base: str, head: str) -> list[str] | None:
    """Files that differ between two commits; None when `base` is not in this clone."""
    if _git("cat-file", "-e", f"{base}^{{commit}}").returncode != 0:
        return None
    proc = _git("diff", "--name-only", base, head)
    return proc.stdout.split() if proc.returncode == 0 else None


def decide(stack: str, base: str | None, head: str, force: bool) -> tuple[bool, str]:
    if force:
        return True, "forced"
    if base is None:
        return True, f"no record of infra applied to {stack!r}"
    files = changed_files(base, head)
    if files is None:
        return True, f"last applied commit {base[:12]} is not in this clone's history"
    hits = [f for f in files if any(fnmatch.fnmatch(f, p) for p in infra_patterns(stack))]
    if hits:
        return True, f"{len(hits)} infra file(s) changed since {base[:12]}: {', '.join(hits[:5])}"
    return False, f"no change in {', '.join(infra_patterns(stack))} since {base[:12]}"


def _write_output(changed: bool) -> None:
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(f"changed={'true' if changed else 'false'}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="Pulumi stack / environment (dev, staging, prod)")
    parser.add_argument("--force", default="false", help="'true' to always report a change")
    parser.add_argument("--base", help="compare against this commit instead of the recorded one")
    parser.add_argument("--record", action="store_true", help="record HEAD as applied to the stack")
    args = parser.parse_args(argv)
    head = head_commit()

    if args.record:
        proc = _pulumi("stack", "tag", "set", TAG, head, "--stack", args.stack)
        if proc.returncode != 0:
            print(f"infra_changed: could not record {head[:12]} on {args.stack!r}: {proc.stderr.strip()}", file=sys.stderr)
            return 1
        print(f"recorded infra of {head[:12]} as applied to {args.stack!r}")
        return 0

    if args.base:
        base, _ = args.base, "given"
    else:
        base, why = last_applied(args.stack)
        if base is None:
            print(f"({why})")
    changed, reason = decide(args.stack, base, head, args.force.strip().lower() == "true")
    print(f"infra {'changed' if changed else 'unchanged'} for {args.stack}: {reason}")
    _write_output(changed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
