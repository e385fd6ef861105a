"""`conveyor`: one entry point; each sub-command group lives with the code it drives."""

from __future__ import annotations

import typer

from bundles.cli import app as bundle_app
from conveyor.init import app as init_app
from core.cli import guarded
from conveyor.env_cli import app as env_app
from ml.cli import app as model_app

app = typer.Typer(
    name="conveyor",
    help="Environments as code and asset bundles of ML jobs that move dev → staging → prod.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(env_app, name="env", help="Provision and inspect environments (Pulumi stacks).")
app.add_typer(bundle_app, name="bundle", help="Validate, plan, deploy and run the asset bundle.")
app.add_typer(model_app, name="model", help="Operate the models an environment serves.")
app.add_typer(init_app, name="init", help="Start a new use case or project from the templates.")


def main() -> None:
    """Run `conveyor`: a user error (`ConveyorError`) is one line and its exit code, Ctrl-C exits
    130, any other exception is a bug and keeps its traceback (`core.cli.guarded`)."""
    guarded(app)()


if __name__ == "__main__":
    main()
