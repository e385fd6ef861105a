"""The `deploy_model` task: decide champion vs challenger in the registry, package the champion.

It never touches a running endpoint; `ml.serving` owns the endpoint and rolls it to the
champion (task `update_endpoint`). See `ml/serving/README.md` for the split.
"""
