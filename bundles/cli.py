"""`conveyor bundle …` (placeholder until the bundle engine lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
