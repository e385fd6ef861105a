"""The ground every layer stands on: the environment contract, local paths, storage,
a task's runtime context, typed `CONVEYOR_*` settings and the one error root.

Nothing here imports Pulumi, the bundle engine, the CLI or ML code; a job's code wheel
needs only this package plus the code its tasks run.
"""
