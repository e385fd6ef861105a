"""The init tests train what `conveyor init` generates against the ML tests' real MLflow server."""

from tests.ml.conftest import mlflow_server  # noqa: F401  (a session fixture shared with tests/ml)
