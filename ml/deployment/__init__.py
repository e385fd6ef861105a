"""The `deploy_model` task: decide champion vs challenger in the registry, package the winner.

It never touches a running endpoint; `ml.serving` owns the endpoint and rolls it to the
decided version (task `update_endpoint`), which moves the `champion` alias when the rollout
completes (`promote.py`). See `ml/serving/README.md` for the split.
"""
