"""`conveyor model …`: operate the models an environment's endpoint serves.

Every command runs under `core.cli.guarded`: a user error (`ConveyorError`: unknown env,
nothing to promote, …) is one line `error: <message>` and exit 1; a bug keeps its traceback.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from core.cli import guarded
from core.errors import ConveyorError

app = typer.Typer(no_args_is_help=True, help="Operate the models an environment serves.")
console = Console()
err = Console(stderr=True)

TargetOpt = typer.Option(..., "--target", "-t", help="environment: dev, staging or prod")
EndpointOpt = typer.Option(None, "--endpoint", "-e", help="a serving endpoint of the env (default: its default one)")


def _endpoint(target: str, endpoint: str | None):
    """(outputs, config dir, route name) of `endpoint` in env `target`; route name None = the default endpoint."""
    from ml.serving.endpoints import resolve

    outputs, root = _env(target)
    binding, directory = resolve(root, endpoint)
    return outputs, directory, None if binding.default else binding.name


def _env(target: str):
    """Stack outputs of `target` (inside a task, the runtime's outputs file for that env)."""
    from conveyor.stack import read_outputs
    from core import settings
    from core.contract import EnvironmentOutputs
    from core.runtime import RuntimeContextError, local_storage_path

    given = settings.ENV_OUTPUTS.get()
    outputs = None
    if given is not None and given.is_file():
        outputs = EnvironmentOutputs.model_validate_json(given.read_text())
        if outputs.env != target:
            outputs = None
    if outputs is None:
        outputs = read_outputs(target)
    try:
        return outputs, local_storage_path(outputs, "endpoint")
    except RuntimeContextError as exc:  # a kubernetes env, outside its job pods
        raise ConveyorError(f"{exc}; run this in a job of that env (`conveyor bundle run`)") from None


def _fail(msg: str) -> None:
    raise ConveyorError(msg)


def _serving_token(outputs) -> str | None:
    """A serving token of the env (`/status` is behind it), from whichever persona the outputs carry."""
    return next((c.token for c in outputs.credentials.values()), None)


@app.command()
@guarded
def status(target: str = TargetOpt, endpoint: str | None = EndpointOpt,
           as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
    """What the endpoint serves: config revision, model versions, rollout state, the code version
    (deployed artifact, git sha, Bento), and what the live process reports."""
    import httpx

    from ml.serving import client
    from ml.serving.endpoint_config import read_config

    outputs, endpoint_dir, named = _endpoint(target, endpoint)
    cfg = read_config(endpoint_dir)
    try:
        live = client.status(outputs.serving_url, endpoint=named, token=_serving_token(outputs))
    except httpx.HTTPError as exc:  # endpoint down is information, not a crash
        live = {"error": f"endpoint not reachable at {outputs.serving_url}: {exc}"}
    if as_json:
        wanted = _code_request(outputs)
        console.print_json(json.dumps({"config": cfg.model_dump(), "live": live,
                                       "code": wanted.model_dump() if wanted else None}))
        return
    table = Table(title=f"endpoint {named} of {target} ({outputs.serving_url}/{named})" if named
                  else f"endpoint of {target} ({outputs.serving_url})")
    table.add_column("")
    table.add_column("configured")
    table.add_column("live")
    lm = live.get("models", {})
    for role in ("champion", "challenger", "candidate"):
        m = getattr(cfg, role)
        table.add_row(role, f"{m.name} v{m.version}" if m else "-",
                      f"v{lm[role]['version']}" if role in lm else "-")
    table.add_row("revision", str(cfg.revision), str(live.get("revision", live.get("error", "?"))))
    table.add_row("state", cfg.state, str(live.get("state", "")))
    table.add_row("strategy", f"{cfg.rollout.strategy} ({cfg.canary_percent():g}% challenger)", "")
    table.add_row("last change", f"{cfg.reason} (by {cfg.updated_by})" if cfg.revision else "-", "")
    table.add_row("rollback to", ", ".join(f"v{m.version}" for m in reversed(cfg.previous_champions)) or "-", "")
    wanted, code = _code_request(outputs), live.get("code") or {}
    table.add_row("code", f"{wanted.short} (git {wanted.git_sha[:12]}, {wanted.deployment})" if wanted else "-",
                  f"{code['version']} (git {(code.get('git_sha') or '?')[:12]}, {code.get('bento')})"
                  if code.get("version") else str(code.get("state", "-")))
    if code.get("failed"):
        table.add_row("code rollout", "", f"failed for {code['failed']['artifact'][:12]}: {code['failed']['reason']}")
    console.print(table)


def _code_request(outputs):
    """The code the env's endpoint should run (`core.serving_code`), None before any deploy."""
    from core.serving_code import read_request
    from core.storage import Blobs, StorageError

    try:
        return read_request(Blobs(outputs.storage.bundle))
    except StorageError:
        return None


def _models_dir(outputs):
    """The env's `storage.models` as a local path, None where this machine cannot reach it."""
    from core.runtime import RuntimeContextError, local_storage_path

    try:
        return local_storage_path(outputs, "models")
    except RuntimeContextError:
        return None


def _move_alias(outputs, persona: str, name: str, version: str) -> None:
    import os

    from ml.errors import tracking_refusal

    try:
        from mlflow import MlflowClient

        cred = outputs.credential(persona)
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = cred.username, cred.password
        client = MlflowClient(tracking_uri=outputs.tracking_uri)
        models = _models_dir(outputs)
        if models is None:  # the pointer lives on the env's state volume, out of reach here
            client.set_registered_model_alias(name, "champion", version)
        else:  # the alias and its champion.json pointer move together (ml.deployment.promote)
            from ml.deployment.promote import move_champion

            move_champion(name, version, models_dir=models, client=client, reason="by hand (conveyor model)",
                          echo=lambda _: None)
        console.print(f"MLflow alias champion → {name} v{version}")
    except Exception as exc:
        if tracking_refusal(exc) is None:
            raise  # a bug, not the registry saying no
        err.print(f"[yellow]warning:[/] endpoint changed but the MLflow alias was not moved: {exc}")


@app.command()
@guarded
def promote(target: str = TargetOpt, endpoint: str | None = EndpointOpt,
            persona: str = typer.Option("ml_engineer", help="whose credentials move the MLflow champion alias"),
            wait: float = typer.Option(60.0, help="seconds to wait for the endpoint to serve it")) -> None:
    """End an A/B, shadow or canary rollout early: the challenger becomes champion now."""
    from ml.serving import client
    from ml.serving.endpoint_config import EndpointConfig, update_config
    from ml.serving.endpoint_config import promote as do_promote
    from ml.serving.errors import EndpointNotReady

    outputs, endpoint_dir, named = _endpoint(target, endpoint)

    def change(cfg: EndpointConfig):
        if cfg.challenger is None:
            _fail(f"the {target} endpoint has no challenger to promote (state {cfg.state})")
        return do_promote(cfg, cfg.challenger)

    cfg = update_config(endpoint_dir, change, by=f"conveyor model promote ({persona})", reason="challenger promoted by hand")
    model = cfg.champion
    try:
        client.wait_for_revision(outputs.serving_url, cfg.revision, timeout_s=wait, confirmations=1, endpoint=named,
                                 token=_serving_token(outputs))
        console.print(f"[green]serving {model.name} v{model.version}[/] as champion")
    except EndpointNotReady as exc:
        err.print(f"[yellow]warning:[/] endpoint has not confirmed yet: {exc}")
    _move_alias(outputs, persona, model.name, model.version)


@app.command()
@guarded
def rollback(target: str = TargetOpt, endpoint: str | None = EndpointOpt,
             persona: str = typer.Option("ml_engineer", help="whose credentials move the MLflow champion alias"),
             wait: float = typer.Option(60.0, help="seconds to wait for the endpoint to serve it")) -> None:
    """Serve the previous champion again, now (and point the `champion` alias back at it)."""
    import time

    from ml.serving import client
    from ml.serving.deploy import DeployError
    from ml.serving.deploy import rollback as do_rollback
    from ml.serving.errors import EndpointNotReady

    outputs, endpoint_dir, named = _endpoint(target, endpoint)
    started = time.monotonic()
    try:
        cfg = do_rollback(endpoint_dir, by=f"conveyor model rollback ({persona})")
    except DeployError as exc:
        _fail(str(exc))
    model = cfg.champion
    console.print(f"endpoint config revision {cfg.revision}: champion → {model.name} v{model.version}")
    try:
        client.wait_for_revision(outputs.serving_url, cfg.revision, timeout_s=wait, confirmations=1, endpoint=named,
                                 token=_serving_token(outputs))
        console.print(f"[green]serving {model.name} v{model.version}[/] after {time.monotonic() - started:.1f}s")
    except EndpointNotReady as exc:
        err.print(f"[yellow]warning:[/] endpoint has not confirmed yet: {exc}")
    _move_alias(outputs, persona, model.name, model.version)
