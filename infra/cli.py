"""`conveyor env …` (placeholder until the local platform lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
