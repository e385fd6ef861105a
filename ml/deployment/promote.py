"""The `champion` alias moves here, and only here: once the version `deploy_model` decided serves.

`deploy_model` decides (challenger vs champion) and publishes the decided version as the task
value `champion_version`; it moves no alias but `challenger`. The alias follows what the endpoint
really serves: `update_endpoint` calls `move_champion` when its rollout completed (a first model, a
direct rollout, a passed canary, an A/B test whose rule chose the challenger). A failed or waiting
rollout leaves it where it was, so batch scoring and people read what serves.

`move_champion` also writes the champion pointer `storage.models/<registered model>/champion.json`
(`ml.registry.champion_pointer`; docs/model-handoff.md) — written when the alias moves, never before.

As a task (`python -m ml.deployment.promote --version {{tasks.deploy_model.values.champion_version}}`)
it is the last step of a training job whose use case has no endpoint (batch scoring only): nothing
rolls out, so the decided version becomes champion once it is decided. An empty `--version`
(`deploy_model` decided none: a first model below baseline) is nothing to do.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from core import runtime
from core.files import atomic_write
from ml import task
from ml.registry import CHAMPION, alias_version, champion_pointer

__all__ = ["is_champion", "keep_champion_on", "move_champion", "names_champion"]


def names_champion(name: str, version: str) -> bool:
    """Whether the registry's `champion` alias of `name` already names `version`."""
    from mlflow import MlflowClient

    current = alias_version(MlflowClient(), name, CHAMPION)
    return current is not None and str(current.version) == str(version)


def keep_champion_on(name: str, version: str) -> bool:
    """Point `champion` back at `version`, the one the endpoint serves, unless it already names it
    (someone had pointed it at a new version by hand). True if it moved."""
    from mlflow import MlflowClient

    if names_champion(name, version):
        return False
    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))
    return True


def is_champion(name: str, version: str, models_dir: Path) -> bool:
    """Whether both the alias and the champion pointer already name `version` (nothing to move)."""
    pointer = champion_pointer(models_dir, name)
    try:
        pointed = json.loads(pointer.read_text()).get("version")
    except (OSError, ValueError):
        return False
    return pointed == str(version) and names_champion(name, version)


def move_champion(name: str, version: str, *, models_dir: Path, bentos_dir: Path | None = None,
                  bentoml_model: str | None = None, reason: str = "", echo=print, client=None) -> dict:
    """Point `champion` of `name` at `version` and write its pointer; returns the pointer.

    The pointer's figures come from the registry: the version's lineage tags (`data_version`,
    `git_sha`, `bentoml_model`) and the held-out metrics `deploy_model` logged to its run
    (`deploy_challenger_<metric>`). `client`: an MlflowClient (default: the task's, from MLFLOW_*)."""
    from mlflow import MlflowClient

    client = client or MlflowClient()
    mv = client.get_model_version(name, str(version))
    metrics = {}
    if mv.run_id:
        logged = client.get_run(mv.run_id).data.metrics
        metrics = {k.removeprefix("deploy_challenger_"): v for k, v in logged.items() if k.startswith("deploy_challenger_")}
    client.set_registered_model_alias(name, CHAMPION, str(version))
    pointer = {"registered_model": name, "version": str(version), "model_uri": f"models:/{name}/{version}",
               "data_version": mv.tags.get("data_version"), "git_sha": mv.tags.get("git_sha"), "metrics": metrics,
               "promoted_at": dt.datetime.now(dt.UTC).isoformat(), "reason": reason,
               "bentoml_model": bentoml_model or mv.tags.get("bentoml_model"),
               "bentoml_home": str(bentos_dir) if bentos_dir else None}
    atomic_write(champion_pointer(models_dir, name), json.dumps(pointer, indent=2))
    echo(f"alias champion moved to v{version}" + (f" ({reason})" if reason else ""))
    return pointer


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.deployment.promote", __doc__)
    ap.add_argument("--version", default=None,
                    help="the version to make champion (default: what deploy_model decided in this run)")
    args = ap.parse_args(argv)

    def body() -> int:
        ctx = runtime.context()
        name = args.model_name or task.upstream("deploy_model", "model_name") or task.model_name(args, ctx)
        version = args.version if args.version is not None else task.upstream("deploy_model", "champion_version")
        if version in (None, "", "None"):
            print(f"promote: deploy_model decided no champion for {name}; nothing to promote")
            return 0
        if is_champion(name, str(version), ctx.storage_path("models")):
            print(f"promote: {name} v{version} is already champion")
            return 0
        move_champion(name, str(version), models_dir=ctx.storage_path("models"), bentos_dir=ctx.storage_path("bentos"),
                      reason="decided by deploy_model; no endpoint rolls it out",
                      echo=lambda line: print(f"promote: {line}"))
        return 0

    return task.run_task("promote", body)


if __name__ == "__main__":
    raise SystemExit(main())
