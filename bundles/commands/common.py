"""What every bundle command shares: consoles, options, the error wrapper, loading the
bundle and its environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from bundles.errors import BundleError, BundleInvalid
from bundles.loader import BUNDLE_FILE, ResolvedBundle, load_bundle
from core import settings
from core.cli import guarded
from core.contract import EnvironmentOutputs

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
if not out.is_terminal:  # CI logs: do not squeeze tables into 80 columns
    out = Console(soft_wrap=True, width=160)

TargetOpt = typer.Option(None, "-t", "--target", help="bundle target (default: the one marked default)")
VarOpt = typer.Option(None, "--var", help="set a variable: --var name=value (repeatable)")
OutputOpt = typer.Option("text", "-o", "--output", help="text or json")
AsOpt = typer.Option(None, "--as", help="persona whose credentials to use (default: the target's run_as)")


# Every bundle command runs under the one CLI wrapper: a user error is its details (an invalid
# bundle's diagnostics) plus one `error:` line, exit 1; Ctrl-C exits 130; a bug keeps its traceback.
handled = guarded


def bundle_root() -> Path:
    """The nearest directory upwards holding bundle.yml (or $CONVEYOR_PROJECT_DIR)."""
    env = settings.PROJECT_DIR.get()
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise BundleError(f"no {BUNDLE_FILE} in {here} or any parent directory")


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair or not pair.split("=", 1)[0]:
            raise BundleError(f"{flag} expects name=value, got {pair!r}")
        k, v = pair.split("=", 1)
        parsed[k.strip()] = v
    return parsed


def load(target: str | None, var: list[str] | None, strict: bool = False) -> ResolvedBundle:
    """The bundle for `target`; warnings are printed, errors raise BundleInvalid."""
    bundle, diags = load_bundle(bundle_root(), target, parse_pairs(var, "--var"))
    errors = [d for d in diags if d.severity == "error" or strict]
    if bundle is None or errors:
        raise BundleInvalid(diags)
    for d in diags:
        err.print(d.render(), highlight=False, soft_wrap=True)
    return bundle


def outputs_for(bundle: ResolvedBundle) -> EnvironmentOutputs:
    """The target's environment: `$CONVEYOR_OUTPUTS_DIR/<stack>.json` if set (CI runners
    handed the outputs as a file), else the Pulumi stack's outputs."""
    folder = settings.OUTPUTS_DIR.get()
    if folder:
        path = Path(folder) / f"{bundle.stack}.json"
        if not path.is_file():
            raise BundleError(f"no outputs for environment {bundle.stack!r} at {path}")
        return EnvironmentOutputs.model_validate_json(path.read_text())
    from conveyor.stack import read_outputs

    return read_outputs(bundle.stack)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
