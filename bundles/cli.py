"""`conveyor bundle …`: validate, plan, deploy, run, runs, destroy, summary, schema.

Each command lives in `bundles/commands/` (one module per concern) and is registered
here; they share the error wrapper and the loading of bundle and environment
(`bundles.commands.common`).
"""

from __future__ import annotations

import typer

from bundles.commands import deploy, run, validate

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Validate, plan, deploy and run the asset bundle (bundle.yml + resources/).")

for command in (validate.validate, validate.schema, deploy.plan, deploy.deploy, deploy.destroy, deploy.summary,
                run.run, run.runs):
    app.command()(command)
