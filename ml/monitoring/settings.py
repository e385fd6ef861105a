"""Monitor settings: thresholds and windowing, the bundle's `monitors` resource.

In a job run they are the run's deployment's (`deployed_monitor_settings`): the monitor spec
`bundle deploy` resolved and stored in the env, so editing a checkout's resources changes
nothing until it is deployed. Started by hand outside any deployment, a task reads a resource
file as written (`load_monitor_settings`), else the defaults below.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from core.errors import ConveyorError


class MonitorError(ConveyorError, ValueError):
    """Bad monitor settings or inputs of a monitoring task; exits 2 (a usage error)."""

    exit_code = 2


class Thresholds(BaseModel):
    psi: float = Field(0.2, description="per-feature PSI above this is drift")
    js: float = Field(0.2, description="per-feature Jensen-Shannon distance above this is drift")
    ks: float = Field(0.2, description="per-feature KS statistic above this is drift (statistic, not p-value: windows are large)")
    prediction_psi: float = Field(0.2, description="PSI of predicted probabilities vs the reference scored by the champion")
    min_roc_auc: float = Field(0.7, description="quality floor once labels arrive (classification)")
    max_rmse: float | None = Field(None, gt=0, description="quality ceiling once labels arrive (regression)")
    min_drifted_features: int = Field(1, ge=1, description="features that must drift for a window to count as drifted")


class MonitorConfig(BaseModel):
    window_rows: int | None = Field(None, ge=50, description="fixed-size windows of N requests (else time windows)")
    window_minutes: float = Field(60.0, gt=0)
    max_windows: int = Field(24, ge=1, description="most recent windows evaluated per run")
    min_window_rows: int = Field(50, ge=1, description="smaller windows are skipped (too noisy)")
    min_labels: int = Field(50, ge=1)
    reference_rows: int = Field(5000, ge=100)
    retrain_violations: int = Field(2, ge=1, description="N: violating windows among the last M that trigger retraining")
    retrain_windows: int = Field(3, ge=1, description="M")
    training_window_hours: float = Field(168.0, gt=0, description="a drift-triggered retrain trains on the labelled "
                                         "requests of this many hours up to now (ml/monitoring/training_window.py)")


class MonitorSettings(BaseModel):
    key: str = "fraud_monitor"
    thresholds: Thresholds = Thresholds()
    config: MonitorConfig = MonitorConfig()
    retrain_job: str | None = "model_training_job"


def _from_resource(key: str, res: dict, where: str) -> MonitorSettings:
    try:
        return MonitorSettings(key=key, thresholds=Thresholds.model_validate(res.get("thresholds") or {}),
                               config=MonitorConfig.model_validate(res.get("config") or {}),
                               retrain_job=res.get("retrain_job"))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MonitorError(f"{where}: monitors.{key}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def load_monitor_settings(path: Path) -> MonitorSettings:
    """Outside any deployment: the first monitor of resource file `path`, as written."""
    if not Path(path).is_file():
        raise MonitorError(f"monitor settings file not found: {path}")
    doc = yaml.safe_load(Path(path).read_text()) or {}
    monitors = (doc.get("resources") or {}).get("monitors") or {}
    if not monitors:
        return MonitorSettings()
    key, res = next(iter(monitors.items()))
    return _from_resource(key, res, str(path))


def deployed_monitor_settings(key: str | None = None, endpoint: str | None = None) -> MonitorSettings:
    """Inside a job run: monitor `key` of the run's deployment as deployed; without a key, the
    monitor of serving endpoint `endpoint` (default: the deployment's default endpoint), or the
    deployment's only monitor. A ConveyorError saying what to declare when there is none."""
    from bundles.deployed import task_specs
    from core import settings
    from core.errors import did_you_mean

    where = f"deployment {settings.DEPLOYMENT.get()}"
    monitors = task_specs("monitors")
    redeploy = "and redeploy with `conveyor bundle deploy`"
    if key is not None:
        if key not in monitors:
            raise MonitorError(f"no monitor {key!r} in {where}{did_you_mean(key, monitors)} "
                               f"(deployed: {', '.join(monitors) or 'none'}); declare it under resources.monitors {redeploy}")
        return _from_resource(key, monitors[key], where)
    if endpoint is None and len(monitors) == 1:
        key = next(iter(monitors))
        return _from_resource(key, monitors[key], where)
    if endpoint is None:
        endpoints = task_specs("serving_endpoints")
        endpoint = next((k for k, spec in endpoints.items() if spec.get("default")), None)
    watching = [k for k, spec in monitors.items() if endpoint is not None and spec.get("endpoint") == endpoint]
    if len(watching) != 1:
        what = f"endpoint {endpoint!r}" if endpoint else "the default endpoint (none is `default: true`)"
        problem = "no monitor" if not watching else f"monitors {', '.join(watching)}"
        raise MonitorError(f"{where} has {problem} of {what} (monitors: {', '.join(monitors) or 'none'}); "
                           + ("pass --monitor" if watching else f"declare one under resources.monitors {redeploy}"))
    return _from_resource(watching[0], monitors[watching[0]], where)


def monitor_settings(key: str | None = None, endpoint: str | None = None, path: Path | None = None) -> MonitorSettings:
    """What a monitoring task acts on: in a job run the deployed monitor, never a file (it would be
    a checkout's); outside one, resource file `path`, else the defaults."""
    from core import settings

    deployment = settings.DEPLOYMENT.get()
    if deployment:
        if path is not None:
            raise MonitorError(f"--monitor-file {path}: a run of deployment {deployment} reads the monitor it deployed, "
                               f"not a file; drop monitor-file from the job's task and redeploy")
        return deployed_monitor_settings(key, endpoint)
    return load_monitor_settings(path) if path is not None else MonitorSettings()
