"""Asset bundles: `bundle.yml` + `resources/*.yml` validated, deployed into an environment
and run there (`conveyor bundle …`). Start at `loader.py` (config), `engine.py` (deploy),
`resources/` (one module per resource kind), `backends/` (where jobs run, per platform),
`runner.py` (a run) and `scheduler.py` (cron); docs/bundles.md describes the format."""
