"""Asset bundles: `bundle.yml` + `resources/*.yml` validated, deployed into an environment
and run there (`conveyor bundle …`). Start at `loader.py` (config), `engine.py` (deploy),
`runner.py` (jobs) and `scheduler.py` (cron); docs/bundles.md describes the format."""
