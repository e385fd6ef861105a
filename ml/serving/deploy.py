"""Move a model version onto an environment's endpoint — the serving half of `deploy_model`.

1. copy the model version locally into the endpoint dir (the service loads from disk, fast);
2. stage it as `candidate` (loaded, no traffic) and wait until the endpoint has it;
3. readiness + a short load test on `/candidate/predict` against the SLA in config; failing
   leaves the current champion serving and raises `DeployError` with the figures;
4. apply the rollout strategy: direct | ab | shadow | canary (stages walked by the service's
   clock; the service's guard rolls back on its own; this step waits and then promotes).

Task usage: `python -m ml.serving.deploy --model-name fraud_detector --alias challenger`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ml.serving import client, loadtest
from ml.serving.endpoint_config import (
    SLA, EndpointConfig, Rollout, ServedModel, promote, read_config, update_config,
)


class DeployError(RuntimeError):
    """The model did not go live; the message has the reason and figures."""


def materialize(name: str, version: str, endpoint_dir: Path) -> ServedModel:
    """Download `models:/name/version` under `<endpoint dir>/models/` (needs MLFLOW_* env)."""
    import mlflow

    dest = Path(endpoint_dir) / "models" / name / str(version)
    uri = f"models:/{name}/{version}"
    if not (dest / "MLmodel").exists():
        dest.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest))
        if not (dest / "MLmodel").exists():  # some stores nest the model dir
            nested = next(dest.rglob("MLmodel"), None)
            if nested is None:
                raise DeployError(f"{uri} has no MLmodel file")
            dest = nested.parent
    return ServedModel(name=name, version=str(version), uri=uri, path=str(dest), threshold=_threshold(name, version))


def _threshold(name: str, version: str) -> float:
    """The flagging threshold the model was trained with (run param `train.threshold`), else 0.5."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient()
        run_id = client.get_model_version(name, str(version)).run_id
        return float(client.get_run(run_id).data.params.get("train.threshold", 0.5)) if run_id else 0.5
    except Exception:
        return 0.5


def resolve_alias(name: str, alias: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


def check_sla(result: loadtest.LoadResult, sla: SLA) -> list[str]:
    problems = []
    if result.error_rate > sla.max_error_rate:
        problems.append(f"error rate {result.error_rate:.2%} > {sla.max_error_rate:.2%}")
    if result.pct(95) > sla.p95_ms:
        problems.append(f"p95 {result.pct(95):.1f} ms > {sla.p95_ms:.1f} ms")
    if result.qps < sla.min_qps:
        problems.append(f"throughput {result.qps:.1f} QPS < {sla.min_qps:.1f} QPS")
    return problems


def deploy(model: ServedModel, *, endpoint_dir: Path, serving_url: str, token: str, rollout: Rollout,
           sla: SLA | None = None, by: str = "deploy", wait_timeout_s: float = 180.0, echo=print) -> EndpointConfig:
    endpoint_dir = Path(endpoint_dir)
    sla = sla or read_config(endpoint_dir).sla

    def stage(cfg: EndpointConfig):
        cfg.candidate = model
        cfg.sla = sla
        if cfg.champion is None:
            cfg.state = "testing"
        return cfg

    cfg = update_config(endpoint_dir, stage, by=by, reason=f"stage {model.name} v{model.version} for checks")
    echo(f"staged {model.name} v{model.version} as candidate (revision {cfg.revision}); waiting for the endpoint")
    try:
        client.wait_for_revision(serving_url, cfg.revision, timeout_s=wait_timeout_s)
    except (TimeoutError, RuntimeError) as exc:
        _unstage(endpoint_dir, by, f"candidate failed to load: {exc}")
        raise DeployError(f"readiness failed: {exc}") from None

    url = f"{serving_url.rstrip('/')}/candidate/predict"
    bodies = [{"rows": [r]} for r in client.sample_rows(200)]
    # warm-up: a freshly loaded model's first calls pay one-off costs the SLA is not about
    loadtest.run(url, bodies, token=token, duration_s=1.0, concurrency=1, max_requests=20)
    result = loadtest.run(url, bodies, token=token, duration_s=sla.duration_s, concurrency=sla.concurrency)
    figures = result.summary()
    echo(f"load test on candidate: {figures}")
    problems = check_sla(result, sla)
    if problems:
        _unstage(endpoint_dir, by, "SLA not met: " + "; ".join(problems))
        raise DeployError(f"{model.name} v{model.version} failed the SLA ({'; '.join(problems)}); "
                          f"champion unchanged. figures: {figures}"
                          + (f" first errors: {result.error_samples[:2]}" if result.error_samples else ""))

    def go_live(cfg: EndpointConfig):
        cfg.candidate = None
        if rollout.strategy == "direct" or cfg.champion is None:
            return promote(cfg, model)
        cfg.challenger = model
        cfg.rollout = rollout.model_copy(update={"started_at": time.time()})
        cfg.state = "rolling_out"
        return cfg

    strategy = rollout.strategy if read_config(endpoint_dir).champion is not None else "direct"
    cfg = update_config(endpoint_dir, go_live, by=by, reason=f"{strategy} rollout of {model.name} v{model.version}")
    client.wait_for_revision(serving_url, cfg.revision, timeout_s=wait_timeout_s)
    echo(f"{strategy}: revision {cfg.revision} live")
    if strategy == "canary":
        cfg = watch_canary(endpoint_dir, model, by=by, echo=echo)
        client.wait_for_revision(serving_url, cfg.revision, timeout_s=wait_timeout_s)
    return cfg


def watch_canary(endpoint_dir: Path, model: ServedModel, *, by: str, echo=print, poll_s: float = 0.5) -> EndpointConfig:
    """Wait out the canary stages; promote at the end unless the service's guard rolled it back."""
    last_pct = None
    while True:
        cfg = read_config(endpoint_dir)
        if cfg.challenger is None or cfg.challenger.version != model.version:
            raise DeployError(f"canary of {model.name} v{model.version} rolled back: {cfg.reason}")
        pct = cfg.canary_percent()
        if pct != last_pct:
            echo(f"canary: {pct:g}% of traffic on v{model.version}")
            last_pct = pct
        total = sum(s.seconds for s in cfg.rollout.stages)
        if time.time() - (cfg.rollout.started_at or cfg.updated_at) >= total:
            break
        time.sleep(poll_s)

    def finish(cfg: EndpointConfig):
        if cfg.challenger is None or cfg.challenger.version != model.version:
            return None
        return promote(cfg, model)

    new = update_config(endpoint_dir, finish, by=by, reason=f"canary of {model.name} v{model.version} passed")
    if new.champion is None or new.champion.version != model.version:
        raise DeployError(f"canary of {model.name} v{model.version} rolled back: {new.reason}")
    echo(f"canary passed: v{model.version} is champion")
    return new


def _unstage(endpoint_dir: Path, by: str, reason: str) -> None:
    def change(cfg: EndpointConfig):
        cfg.candidate = None
        if cfg.champion is not None:
            cfg.state = "serving"
        else:
            cfg.state = "empty"
        return cfg

    update_config(endpoint_dir, change, by=by, reason=reason)


def rollback(endpoint_dir: Path, *, by: str) -> EndpointConfig:
    """Serve the previous champion again (drops any challenger). Raises if there is none."""
    def change(cfg: EndpointConfig):
        if not cfg.previous_champions:
            raise DeployError("nothing to roll back to: this endpoint has had only one champion")
        back = cfg.previous_champions[-1]
        cfg.previous_champions = cfg.previous_champions[:-1]
        cfg.champion = back
        cfg.challenger = None
        cfg.candidate = None
        cfg.rollout = Rollout()
        cfg.state = "serving"
        return cfg

    return update_config(endpoint_dir, change, by=by, reason="rollback to previous champion")


def main(argv: list[str] | None = None) -> int:
    from core import runtime
    from ml.serving.endpoint_settings import load_endpoint_settings

    ap = argparse.ArgumentParser(prog="python -m ml.serving.deploy", description=__doc__.splitlines()[0])
    ap.add_argument("--model-name", required=True)
    ap.add_argument("--alias", default="champion")
    ap.add_argument("--version", default=None)
    ap.add_argument("--strategy", default=None, choices=["direct", "ab", "canary", "shadow"])
    ap.add_argument("--endpoint-file", default="resources/endpoint.yml")
    args = ap.parse_args(argv)
    ctx = runtime.context()
    version = None
    endpoint_dir = ctx.storage_path("endpoint")
    try:
        settings = load_endpoint_settings(Path(args.endpoint_file), ctx.target)
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
            model = materialize(args.model_name, version, endpoint_dir)
            cfg = deploy(model, endpoint_dir=endpoint_dir, serving_url=ctx.outputs.serving_url,
                         token=ctx.outputs.credential(ctx.persona).token, rollout=rollout, sla=settings.sla,
                         by=f"{ctx.job}/{ctx.run_id}")
    except (DeployError, ValueError, TimeoutError, RuntimeError) as exc:
        print(f"update_endpoint failed: {exc}", file=sys.stderr)
        if version is not None:
            _realign_alias(args.model_name, version, endpoint_dir)
        return 1
    except Exception as exc:  # e.g. registry unreachable: one line, not a traceback
        print(f"update_endpoint failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    runtime.set_task_value("endpoint_revision", cfg.revision)
    runtime.set_task_value("served_version", cfg.champion.version if cfg.champion else None)
    return 0


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
