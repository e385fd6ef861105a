"""The init tests train what `conveyor init` generates against the session's real MLflow server
(the `mlflow_server` fixture of tests/conftest.py)."""
