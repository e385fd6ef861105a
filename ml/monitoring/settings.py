"""Monitor settings: thresholds and windowing, read from the bundle's `monitors` resource."""

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
    min_roc_auc: float = Field(0.7, description="quality floor once labels arrive")
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


class MonitorSettings(BaseModel):
    key: str = "fraud_monitor"
    thresholds: Thresholds = Thresholds()
    config: MonitorConfig = MonitorConfig()
    retrain_job: str | None = "model_training_job"


def load_monitor_settings(path: Path) -> MonitorSettings:
    if not Path(path).is_file():
        raise MonitorError(f"monitor settings file not found: {path}")
    doc = yaml.safe_load(Path(path).read_text()) or {}
    monitors = (doc.get("resources") or {}).get("monitors") or {}
    if not monitors:
        return MonitorSettings()
    key, res = next(iter(monitors.items()))
    try:
        return MonitorSettings(key=key, thresholds=Thresholds.model_validate(res.get("thresholds") or {}),
                               config=MonitorConfig.model_validate(res.get("config") or {}),
                               retrain_job=res.get("retrain_job"))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MonitorError(f"{path}: monitors.{key}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
