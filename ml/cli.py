"""`conveyor model …` (placeholder until serving lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
