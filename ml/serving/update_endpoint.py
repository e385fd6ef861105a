"""Task `update_endpoint`: roll the env's endpoint to the registry's `champion` with the bundle's rollout.

Runs after `deploy_model` in `model_training_job`. It resolves the alias, does nothing if that
version already serves, else copies it locally and deploys it (`ml.serving.deploy`: SLA gate,
then the rollout strategy of the endpoint as deployed). While the new version rolls out next to a
serving champion, the `champion` alias stays on that champion (the new version holds `challenger`)
and moves only when the rollout completes; when the new version does not go live, the alias is
pointed back at what the endpoint serves, so the registry never lies. The rollout's evidence (a
canary's challenger requests, an A/B test's labelled arms) is counted in the endpoint's inference
table (`rollout.evidence_table`).

`--endpoint <key>` picks one `serving_endpoints` resource of the run's deployment (default: its
default endpoint), read as `bundle deploy` resolved it (`ml.serving.endpoint_settings`), never from
a checkout; a named one is bound first (`ml.serving.endpoints`), so the serving process serves it.
Started by hand outside a bundle run, `--endpoint-file` names a resource file to read instead.

Task usage: `python -m ml.serving.update_endpoint --model-name fraud_detector --alias champion [--endpoint KEY]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import runtime
from core.errors import ConveyorError
from ml.errors import tracking_refusal
from ml.serving import endpoints, rollouts
from ml.serving.deploy import deploy, materialize, resolve_alias
from ml.serving.endpoint_config import read_config
from ml.serving.endpoint_settings import endpoint_settings


def _strategy(name: str) -> str:
    try:
        return rollouts.check(name)
    except rollouts.UnknownRolloutStrategy as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ml.serving.update_endpoint", description=__doc__.splitlines()[0])
    ap.add_argument("--model-name", required=True)
    ap.add_argument("--alias", default="champion")
    ap.add_argument("--version", default=None)
    ap.add_argument("--strategy", default=None, type=_strategy, metavar="|".join(rollouts.names()),
                    help="override the rollout strategy of the endpoint")
    ap.add_argument("--endpoint-file", default=None, type=Path,
                    help="outside a bundle run only: a resource file declaring the endpoint (a run reads the deployed one)")
    ap.add_argument("--endpoint", default=None,
                    help="the serving_endpoints resource (default: the deployment's default endpoint)")
    ap.add_argument("--use-case", default=None, help="whose request schema it serves (default: the resource's use_case)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ctx = runtime.context()
    version = None
    root = endpoint_dir = ctx.storage_path("endpoint")
    try:
        settings = endpoint_settings(args.endpoint, args.endpoint_file)  # in a run: the deployed spec
        use_case = args.use_case or settings.use_case
        named = None if settings.default else settings.key
        if named is not None or use_case:
            binding = endpoints.Binding(name=settings.key, use_case=use_case or endpoints.default_binding(root).use_case,
                                        model=args.model_name, default=named is None)
            endpoint_dir = endpoints.write_binding(root, binding)
        rollout = settings.rollout
        if args.strategy:
            rollout = rollout.model_copy(update={"strategy": args.strategy})
        version = args.version or resolve_alias(args.model_name, args.alias)
        current = read_config(endpoint_dir)
        if current.champion is not None and current.champion.name == args.model_name \
                and current.champion.version == version and current.challenger is None:
            print(f"update_endpoint: {args.model_name} v{version} already serves on {ctx.env}; nothing to do")
            cfg = current
        else:
            # the rollout's evidence (challenger requests) is counted in this endpoint's inference table
            table = endpoints.table_dir(ctx.storage_path("inference_table"), named)
            rollout = rollout.model_copy(update={"evidence_table": str(table)})
            rolling = _hold_alias(args.model_name, version, current, args.alias)
            model = materialize(args.model_name, version)
            cfg = deploy(model, endpoint_dir=endpoint_dir, serving_url=ctx.outputs.serving_url,
                         token=ctx.outputs.credential(ctx.persona).token, rollout=rollout, sla=settings.sla,
                         by=f"{ctx.job}/{ctx.run_id}", endpoint=named, use_case=use_case)
            if rolling:
                _release_alias(args.model_name, version, cfg)
    except Exception as exc:
        # Whatever went wrong, the registry's champion must name what really serves.
        if version is not None:
            _realign_alias(args.model_name, version, endpoint_dir)
        user_error = exc if isinstance(exc, ConveyorError) else tracking_refusal(exc)
        if user_error is None:
            raise  # a bug: keep the traceback
        print(f"update_endpoint failed: {user_error}", file=sys.stderr)
        return 1
    runtime.set_task_value("endpoint_revision", cfg.revision)
    runtime.set_task_value("served_version", cfg.champion.version if cfg.champion else None)
    return 0


def _hold_alias(name: str, version: str, current, alias: str) -> bool:
    """While `version` rolls out next to a serving champion, the registry's `champion` alias keeps
    naming what the endpoint's champion really is (batch scoring and humans read it); the new version
    holds `challenger`. True when a rollout is starting (the alias moves in `_release_alias`)."""
    if alias != "champion" or current.champion is None or current.champion.name != name \
            or current.champion.version == version:
        return False
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_registered_model_alias(name, "challenger", version)
    client.set_registered_model_alias(name, "champion", current.champion.version)
    print(f"update_endpoint: v{version} rolls out as challenger; alias champion stays on v{current.champion.version} "
          "until the rollout completes")
    return True


def _release_alias(name: str, version: str, cfg) -> None:
    """The rollout ended with `version` as the endpoint's champion: the alias follows. A rollout that
    waits for a person (ab without a decision rule, shadow) leaves it on the serving champion."""
    if cfg.champion is None or cfg.champion.version != version:
        print(f"update_endpoint: v{version} is challenger on the endpoint; alias champion stays on "
              f"v{cfg.champion.version if cfg.champion else '-'} until it is promoted")
        return
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, "champion", version)
    print(f"update_endpoint: rollout complete; alias champion moved to v{version}")


def _realign_alias(name: str, failed_version: str, endpoint_dir: Path) -> None:
    """The registry's `champion` must name what actually serves: point it back after a failed rollout."""
    try:
        from mlflow import MlflowClient

        client = MlflowClient()
        client.set_model_version_tag(name, failed_version, "endpoint_rollout", "failed")
        serving = read_config(endpoint_dir).champion
        if serving is not None and serving.name == name and serving.version != failed_version:
            client.set_registered_model_alias(name, "champion", serving.version)
            print(f"update_endpoint: alias champion moved back to v{serving.version} (what the endpoint serves)",
                  file=sys.stderr)
    except Exception as exc:
        print(f"update_endpoint: could not realign the champion alias: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
