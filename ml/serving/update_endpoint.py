"""Task `update_endpoint`: roll the env's endpoint to the version `deploy_model` decided, with the bundle's rollout.

Runs after `deploy_model` in `model_training_job`, which hands it the decided version as
`--version {{tasks.deploy_model.values.champion_version}}` (by hand: `--version N`, or `--alias A`
to roll out what an alias names; with neither, this run's deploy_model value, else `champion`).
It does nothing if that version already serves, else copies it locally and deploys it
(`ml.serving.deploy`: SLA gate, then the rollout strategy of the endpoint as deployed). The
registry's `champion` alias moves only when the rollout completes with that version serving
(`ml.deployment.promote.move_champion`, which also writes `champion.json`): the first model and
a direct rollout when they go live, a canary when its last stage passed, an A/B test when its
rule chose the challenger. While it rolls out the new version holds `challenger`; a rollout that
fails or waits for a person leaves `champion` on what the endpoint serves, so the registry never
lies. The rollout's evidence (a canary's challenger requests, an A/B test's labelled arms) is
counted in the endpoint's inference table (`rollout.evidence_table`).

`--endpoint <key>` picks one `serving_endpoints` resource of the run's deployment (default: its
default endpoint), read as `bundle deploy` resolved it (`ml.serving.endpoint_settings`), never from
a checkout; a named one is bound first (`ml.serving.endpoints`), so the serving process serves it.
Started by hand outside a bundle run, `--endpoint-file` names a resource file to read instead.

Task usage: `python -m ml.serving.update_endpoint --model-name fraud_detector [--version N | --alias A] [--endpoint KEY]`.
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
    ap.add_argument("--version", default=None,
                    help="the version to roll out (a run passes deploy_model's champion_version; empty: none decided)")
    ap.add_argument("--alias", default=None, help="by hand: roll out the version this alias names (e.g. champion)")
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
        version = _target_version(args)
        if version is None:
            print(f"update_endpoint: deploy_model decided no version of {args.model_name} to serve; nothing to roll out")
            return 0
        current = read_config(endpoint_dir)
        if current.champion is not None and current.champion.name == args.model_name \
                and current.champion.version == version and current.challenger is None:
            print(f"update_endpoint: {args.model_name} v{version} already serves on {ctx.env}; nothing to do")
            cfg = current
        else:
            # the rollout's evidence (challenger requests) is counted in this endpoint's inference table
            table = endpoints.table_dir(ctx.storage_path("inference_table"), named)
            rollout = rollout.model_copy(update={"evidence_table": str(table)})
            _hold_alias(args.model_name, version, current)
            model = materialize(args.model_name, version)
            cfg = deploy(model, endpoint_dir=endpoint_dir, serving_url=ctx.outputs.serving_url,
                         token=ctx.outputs.credential(ctx.persona).token, rollout=rollout, sla=settings.sla,
                         by=f"{ctx.job}/{ctx.run_id}", endpoint=named, use_case=use_case)
        _release_alias(ctx, args.model_name, version, cfg)
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


def _target_version(args) -> str | None:
    """The version to roll out: `--version` (empty: deploy_model decided none → None), else the
    version `--alias` names, else this run's deploy_model decision, else the `champion` alias."""
    if args.version is not None:
        return args.version.strip() or None
    if args.alias:
        return resolve_alias(args.model_name, args.alias)
    from ml.task import upstream

    decided = upstream("deploy_model", "champion_version")
    if decided is not None:
        return str(decided) or None
    return resolve_alias(args.model_name, "champion")


def _hold_alias(name: str, version: str, current) -> None:
    """While `version` rolls out next to a serving champion it holds `challenger`, and `champion`
    keeps naming what the endpoint's champion really is (batch scoring and humans read it) — also
    when someone pointed `champion` at the new version by hand to ask for this rollout."""
    if current.champion is None or current.champion.name != name or current.champion.version == version:
        return
    from mlflow import MlflowClient

    from ml.deployment.promote import keep_champion_on
    from ml.registry import CHALLENGER

    MlflowClient().set_registered_model_alias(name, CHALLENGER, version)
    keep_champion_on(name, current.champion.version)
    print(f"update_endpoint: v{version} rolls out as challenger; alias champion stays on v{current.champion.version} "
          "until the rollout completes")


def _release_alias(ctx, name: str, version: str, cfg) -> None:
    """The rollout ended with `version` as the endpoint's champion: the alias follows (and the
    champion pointer is written). A rollout that waits for a person (ab without a decision rule,
    shadow) leaves it on the serving champion."""
    from ml.deployment.promote import is_champion, move_champion

    if cfg.champion is None or cfg.champion.name != name or cfg.champion.version != version:
        print(f"update_endpoint: v{version} is challenger on the endpoint; alias champion stays on "
              f"v{cfg.champion.version if cfg.champion else '-'} until it is promoted")
        return
    if is_champion(name, version, ctx.storage_path("models")):
        return  # it already served and the registry says so
    tag = cfg.champion.uri.removeprefix("bentoml:") if cfg.champion.uri.startswith("bentoml:") else None
    move_champion(name, version, models_dir=ctx.storage_path("models"), bentos_dir=ctx.storage_path("bentos"),
                  bentoml_model=tag, reason=f"rollout on {ctx.env} complete",  # the config's strategy is `direct` once a canary has passed
                  echo=lambda line: print(f"update_endpoint: rollout complete; {line}"))


def _realign_alias(name: str, failed_version: str, endpoint_dir: Path) -> None:
    """The registry's `champion` must name what actually serves: point it back after a failed rollout."""
    try:
        from mlflow import MlflowClient

        from ml.deployment.promote import keep_champion_on

        MlflowClient().set_model_version_tag(name, failed_version, "endpoint_rollout", "failed")
        serving = read_config(endpoint_dir).champion
        if serving is None or serving.name != name or serving.version == failed_version:
            return
        if not keep_champion_on(name, serving.version):
            print(f"update_endpoint: alias champion stays on v{serving.version} (what the endpoint serves)", file=sys.stderr)
        else:  # someone had pointed it at the new version by hand
            print(f"update_endpoint: alias champion moved back to v{serving.version} (what the endpoint serves)",
                  file=sys.stderr)
    except Exception as exc:
        print(f"update_endpoint: could not realign the champion alias: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
