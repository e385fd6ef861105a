"""Move a model version onto an environment's endpoint (the library behind `update_endpoint`).

1. put the model version into the env's BentoML model store (`deploy_model` already imported a
   champion; any other version, e.g. an older one rolled out by hand, is imported now): the
   endpoint loads it by tag from that store;
2. stage it as `candidate` (loaded, no traffic) and wait until the endpoint has it;
3. readiness + a short load test on `/candidate/predict` against the SLA in config; failing
   leaves the current champion serving and raises `DeployError` with the figures;
4. go live with the rollout strategy (`ml.serving.rollouts`): the strategy changes the
   endpoint config, then says what to wait for (a canary's stages, for example).

`rollback` serves the previous champion again. The task entry point is `ml.serving.update_endpoint`.
`endpoint` names a named endpoint of the env (`ml.serving.endpoints`; None: the default one):
its routes are `/<endpoint>/…`, its config dir the one passed as `endpoint_dir`.
"""

from __future__ import annotations

from pathlib import Path

from ml.serving import client, loadtest, rollouts
from ml.serving.endpoint_config import SLA, EndpointConfig, Rollout, ServedModel, read_config, update_config
from ml.serving.errors import DeployError, EndpointNotReady

__all__ = ["DeployError", "check_sla", "deploy", "materialize", "resolve_alias", "rollback"]


def materialize(name: str, version: str, bentoml_home: Path | None = None) -> ServedModel:
    """`models:/name/version` as the endpoint serves it: by tag from the env's BentoML model store
    (`bentoml_home`, default: the running task's `storage.bentos`), imported first if it is not
    there yet (needs MLFLOW_* env)."""
    from ml.deployment.package import import_model
    from ml.serving.models import bentoml_uri

    if bentoml_home is None:
        from core import runtime

        bentoml_home = runtime.context().storage_path("bentos")
    threshold = _threshold(name, version)
    try:
        tag = import_model(name, str(version), bentoml_home=Path(bentoml_home), threshold=threshold)
    except OSError as exc:
        raise DeployError(f"cannot put models:/{name}/{version} into the BentoML store at {bentoml_home}: {exc}") from None
    return ServedModel(name=name, version=str(version), uri=bentoml_uri(tag), threshold=threshold)


def _threshold(name: str, version: str) -> float:
    """The flagging threshold the model was trained with (run param `train.threshold`), else 0.5."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient()
        run_id = client.get_model_version(name, str(version)).run_id
        return float(client.get_run(run_id).data.params.get("train.threshold", 0.5)) if run_id else 0.5
    except (MlflowException, ValueError):  # no run, or a threshold that is not a number
        return 0.5


def resolve_alias(name: str, alias: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


def check_sla(result: loadtest.LoadResult, sla: SLA) -> list[str]:
    problems = []
    if result.error_rate > sla.max_error_rate:
        problems.append(f"error rate {result.error_rate:.2%} > {sla.max_error_rate:.2%}")
    for q, bound in ((50, sla.p50_ms), (95, sla.p95_ms), (99, sla.p99_ms)):
        if bound is not None and result.pct(q) > bound:
            problems.append(f"p{q} {result.pct(q):.1f} ms > {bound:.1f} ms")
    if result.qps < sla.min_qps:
        problems.append(f"throughput {result.qps:.1f} QPS < {sla.min_qps:.1f} QPS")
    return problems


def deploy(model: ServedModel, *, endpoint_dir: Path, serving_url: str, token: str, rollout: Rollout,
           sla: SLA | None = None, by: str = "deploy", wait_timeout_s: float = 180.0, echo=print,
           endpoint: str | None = None, use_case: str | None = None) -> EndpointConfig:
    """Stage `model`, gate it on the SLA, then go live with `rollout`'s strategy; returns the final config.

    The load test sends rows of `use_case` (default: the default endpoint's)."""
    endpoint_dir = Path(endpoint_dir)
    base = f"{serving_url.rstrip('/')}/{endpoint}" if endpoint else serving_url.rstrip("/")

    def wait(revision: int):
        return client.wait_for_revision(serving_url, revision, timeout_s=wait_timeout_s, endpoint=endpoint,
                                        token=token)

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
        wait(cfg.revision)
    except EndpointNotReady as exc:
        _unstage(endpoint_dir, by, f"candidate failed to load: {exc}")
        raise DeployError(f"readiness failed: {exc}") from None

    url = f"{base}/candidate/predict"
    samples = client.sample_rows(200, use_case=use_case) if use_case else client.sample_rows(200)
    bodies = [{"rows": [r]} for r in samples]
    # warm-up: a freshly loaded model's first calls pay one-off costs the SLA is not about
    loadtest.run(url, bodies, token=token, duration_s=1.0, concurrency=1, max_requests=20)
    result = loadtest.run(url, bodies, token=token, duration_s=sla.duration_s, concurrency=sla.concurrency)
    figures = result.summary()
    echo(f"load test on candidate ({result.tool}): {figures}")
    problems = check_sla(result, sla)
    if problems:
        _unstage(endpoint_dir, by, "SLA not met: " + "; ".join(problems))
        raise DeployError(f"{model.name} v{model.version} failed the SLA ({'; '.join(problems)}); "
                          f"champion unchanged. figures: {figures}"
                          + (f" first errors: {result.error_samples[:2]}" if result.error_samples else ""))

    # an endpoint's first model has no champion to share traffic with
    strategy = rollouts.get(rollout.strategy) if read_config(endpoint_dir).champion is not None else rollouts.default()

    def go_live(cfg: EndpointConfig):
        cfg.candidate = None
        return strategy.go_live(cfg, model, rollout)

    cfg = update_config(endpoint_dir, go_live, by=by, reason=f"{strategy.name} rollout of {model.name} v{model.version}")
    wait(cfg.revision)
    echo(f"{strategy.name}: revision {cfg.revision} live")
    outcome = strategy.after_go_live(endpoint_dir, model, by=by, echo=echo)
    if outcome is not None:
        cfg = outcome
        wait(cfg.revision)
    return cfg


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
