"""The ground every layer stands on: the environment contract, local paths, storage,
a task's runtime context, typed `CONVEYOR_*` settings and the one error root.

Nothing here imports Pulumi, the bundle engine, the CLI or ML code; a job's code wheel
needs only this package plus the code its tasks run.
"""

import os as _os

# Usage telemetry stays off in every process Conveyor starts (children inherit it):
# - Conveyor only talks to loopback servers it runs itself;
# - MLflow's telemetry client sets and unsets `_MLFLOW_TELEMETRY_SESSION_ID` in os.environ from
#   a background thread, and a request that reads the proxy settings at the same moment fails
#   with KeyError('_MLFLOW_TELEMETRY_SESSION_ID') (seen as a failed `log-batch` in a training task).
for _name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "BENTOML_DO_NOT_TRACK"):
    _os.environ.setdefault(_name, "true")
