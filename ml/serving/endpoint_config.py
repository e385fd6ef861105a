"""The endpoint config: which model versions an environment serves and how traffic splits.

Written by the deploy step (and by `conveyor model rollback`, and by the service itself
when a canary trips its guard); read by every serving worker, which swaps models when the
revision changes. One JSON file (`endpoint.json`) replaced atomically, plus an append-only
`history.jsonl` so rollback knows what served before.

What a rollout strategy does with these fields is the strategy's business
(`ml.serving.rollouts`); this module only holds the data and writes it safely.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from core.endpoints import CONFIG_FILE
from core.files import atomic_write

HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".endpoint.lock"


class ServedModel(BaseModel):
    """One model version: `path` (local copy, fast) else `uri` (e.g. models:/name/3)."""

    name: str
    version: str
    uri: str
    path: str | None = None
    threshold: float = Field(default=0.5, gt=0, lt=1, description="classification: the score from which the label is true")


class CanaryStage(BaseModel):
    """One canary stage: `percent` of traffic for at least `seconds` and at least `min_requests`
    challenger requests (default: the guard's `min_requests`), whichever comes last."""

    percent: float = Field(gt=0, le=100)
    seconds: float = Field(gt=0)
    min_requests: int | None = Field(default=None, ge=1, description="challenger requests before the stage may advance")


class CanaryGuard(BaseModel):
    """Live bounds; crossing one rolls the canary back without a human."""

    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_p95_ms: float = Field(default=250.0, gt=0)
    min_requests: int = Field(default=20, ge=1)


class ABDecision(BaseModel):
    """When an A/B test ends and who wins: both arms need `min_samples` labelled requests; the
    challenger wins if it is better on `metric` by more than `margin` and a permutation test puts
    the difference's p-value below `alpha`; otherwise the champion stays."""

    metric: str = Field(default="roc_auc", description="a metric of the use case's task type (ml/usecase/metrics)")
    min_samples: int = Field(default=200, ge=10, description="labelled requests per arm before deciding")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the difference")
    margin: float = Field(default=0.0, ge=0, description="the challenger must be better by more than this")
    max_wait_s: float = Field(default=3600.0, gt=0, description="without enough samples by then: champion stays")


class Rollout(BaseModel):
    """How a challenger shares the endpoint: the strategy's name and the settings strategies read."""

    strategy: str = Field(default="direct", description="a registered rollout strategy (ml.serving.rollouts)")
    challenger_percent: float = Field(default=0.0, ge=0, le=100, description="ab: fixed share of traffic")
    sticky_key: str | None = Field(default="customer_id", description="ab/canary: request field hashed for stickiness")
    stages: list[CanaryStage] = Field(default_factory=list)
    guard: CanaryGuard = Field(default_factory=CanaryGuard)
    max_stage_wait_s: float = Field(default=600.0, gt=0, description="canary: a stage without its minimum "
                                    "challenger requests after this long fails with 'no traffic'")
    decision: ABDecision | None = Field(default=None, description="ab: the rule that ends the test (else: by hand)")
    started_at: float | None = None
    stage: int = Field(default=0, ge=0, description="canary: the stage serving now (advanced on evidence)")
    stage_started_at: float | None = None
    evidence_table: str | None = Field(default=None, description="the inference table the rollout's evidence is "
                                       "counted in (set by update_endpoint)")

    @field_validator("strategy")
    @classmethod
    def _registered(cls, name: str) -> str:
        # imported here: the strategy modules build on this module's types
        from ml.serving import rollouts

        return rollouts.check(name)


class SLA(BaseModel):
    """Pre-traffic gate: a short load test must meet these figures; and the request limits the
    endpoint enforces (413 naming the limit), set with the same `sla:` mapping of the bundle."""

    p50_ms: float | None = Field(default=None, gt=0, description="pre-traffic load test: median latency bound (optional)")
    p95_ms: float = Field(default=200.0, gt=0)
    p99_ms: float | None = Field(default=None, gt=0, description="pre-traffic load test: p99 latency bound (optional)")
    max_error_rate: float = Field(default=0.0, ge=0, le=1)
    min_qps: float = Field(default=20.0, ge=0)
    duration_s: float = Field(default=3.0, gt=0)
    concurrency: int = Field(default=4, ge=1)
    max_rows_per_request: int = Field(default=1000, ge=1, le=100_000, description="rows in one request body")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576, description="bytes of one request body")


class EndpointConfig(BaseModel):
    revision: int = 0
    updated_at: float = 0.0
    updated_by: str = ""
    reason: str = ""
    champion: ServedModel | None = None
    challenger: ServedModel | None = None
    candidate: ServedModel | None = Field(default=None, description="loaded for pre-traffic checks, gets no traffic")
    previous_champions: list[ServedModel] = Field(default_factory=list, description="rollback stack, newest last")
    rollout: Rollout = Field(default_factory=Rollout)
    sla: SLA = Field(default_factory=SLA)
    state: Literal["empty", "serving", "testing", "rolling_out", "rolled_back"] = "empty"

    def served(self) -> list[ServedModel]:
        return [m for m in (self.champion, self.challenger, self.candidate) if m is not None]

    def canary_percent(self, now: float | None = None) -> float:
        """Share of traffic (0-100) the challenger answers right now, as its rollout strategy says."""
        if self.challenger is None:
            return 0.0
        from ml.serving import rollouts

        return rollouts.get(self.rollout.strategy).challenger_percent(self, now or time.time())


def read_config(endpoint_dir: Path) -> EndpointConfig:
    path = Path(endpoint_dir) / CONFIG_FILE
    if not path.exists():
        return EndpointConfig()
    return EndpointConfig.model_validate_json(path.read_text())


def _lock(endpoint_dir: Path):
    from filelock import FileLock

    return FileLock(str(Path(endpoint_dir) / LOCK_FILE), timeout=30)


def update_config(endpoint_dir: Path, change, *, by: str, reason: str) -> EndpointConfig:
    """Read-modify-write under a file lock; `change(cfg)` returns the new config or None to skip.

    The file is replaced atomically so readers never see half a config.
    """
    endpoint_dir = Path(endpoint_dir)
    endpoint_dir.mkdir(parents=True, exist_ok=True)
    with _lock(endpoint_dir):
        current = read_config(endpoint_dir)
        new = change(current.model_copy(deep=True))
        if new is None:
            return current
        new.revision = current.revision + 1
        new.updated_at = time.time()
        new.updated_by = by
        new.reason = reason
        atomic_write(endpoint_dir / CONFIG_FILE, new.model_dump_json(indent=2))
        with open(endpoint_dir / HISTORY_FILE, "a") as fh:
            fh.write(new.model_dump_json() + "\n")
        return new


def history(endpoint_dir: Path) -> list[EndpointConfig]:
    path = Path(endpoint_dir) / HISTORY_FILE
    if not path.exists():
        return []
    return [EndpointConfig.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def promote(cfg: EndpointConfig, model: ServedModel) -> EndpointConfig:
    """Make `model` the champion, remembering the old one for rollback; clears the rollout."""
    if cfg.champion is not None and cfg.champion.version != model.version:
        cfg.previous_champions = [*cfg.previous_champions, cfg.champion][-10:]
    cfg.champion = model
    cfg.challenger = None
    cfg.candidate = None
    cfg.rollout = Rollout()
    cfg.state = "serving"
    return cfg


def drop_challenger(cfg: EndpointConfig, state: str = "rolled_back") -> EndpointConfig:
    """Take the challenger off (the champion answers everything again); clears the rollout.
    `state`: `rolled_back` (a guard or a failed rollout), `serving` (a test the champion won)."""
    cfg.challenger = None
    cfg.rollout = Rollout()
    cfg.state = state
    return cfg
