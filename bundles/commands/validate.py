"""`validate` and `schema`: the bundle's configuration, without touching an environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from bundles.commands.common import (
    OutputOpt,
    TargetOpt,
    VarOpt,
    bundle_root,
    err,
    handled,
    out,
    parse_pairs,
    print_json,
)
from bundles.errors import BundleError
from bundles.loader import load_bundle


@handled
def validate(
    target: str | None = TargetOpt,
    var: list[str] | None = VarOpt,
    strict: bool = typer.Option(False, "--strict", help="treat warnings as errors"),
    output: str = OutputOpt,
) -> None:
    """Check bundle.yml and resources/*.yml; every problem is printed as file:line: message."""
    bundle, diags = load_bundle(bundle_root(), target, parse_pairs(var, "--var"))
    failing = [d for d in diags if d.severity == "error" or strict]
    if output == "json":
        print_json({"valid": not failing and bundle is not None, "diagnostics": [d.to_json() for d in diags]})
        raise typer.Exit(1 if failing or bundle is None else 0)
    for d in diags:
        err.print(d.render(), highlight=False, soft_wrap=True)
    if failing or bundle is None:
        n_err = sum(1 for d in diags if d.severity == "error")
        n_warn = len(diags) - n_err
        raise BundleError(f"bundle is invalid: {n_err} error(s), {n_warn} warning(s)"
                          + (" (--strict)" if strict and not n_err else ""))
    res = bundle.resources
    count = sum(len(getattr(res, k)) for k in type(res).model_fields)
    out.print(f"bundle {bundle.name!r}, target {bundle.target!r} ({bundle.mode}, stack {bundle.stack}): "
              f"valid, {count} resources", highlight=False)


@handled
def schema(output: Path | None = typer.Option(None, "--output-file", "-f", help="write to this file")) -> None:
    """JSON Schema of bundle.yml / resources/*.yml, for editor completion."""
    from bundles.models import schema as make_schema

    text = json.dumps(make_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
