"""The `conveyor bundle …` commands, one module per concern; each command is a thin layer
(arguments in, output out) over one operation of the engine, a job backend or the runner.
`bundles/cli.py` registers them."""
