"""Where the running code lives: the root that holds `ml/`, `usecases/` and `dvc.yaml`.

In a job run that is the deployment's unpacked code wheel: the runner puts it first on
`sys.path` and starts every task in it (`bundles.execution`), and the wheel carries
`dvc.yaml` at its root (`bundles.artifact.RUNTIME_FILES`). Run by hand in a working tree,
it is that working tree. Either way it is the code that is executing, never some other
copy, so a task that opens one of the project's files (a use case's params or sample
data, the DVC pipeline) reads the version it runs: in an environment, the deployed one.
"""

from __future__ import annotations

from pathlib import Path

PIPELINE = "dvc.yaml"


def code_root() -> Path:
    """The root of the running project code: the directory holding the imported `usecases`
    package and `dvc.yaml` (the deployed code in a job run). In this repository, and in its
    code wheel, `ml/` is there too; a project made by `conveyor init project` holds only its
    use cases and `dvc.yaml`, the platform's packages being installed."""
    return package_dir("usecases").parent


def package_dir(name: str) -> Path:
    """Where top-level package `name` (e.g. `usecases`) is imported from: the running code's,
    wherever the import system finds it first (in a run: the deployed code)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    return Path(__file__).resolve().parent.parent / name
