"""`ab`: a fixed share of traffic (`challenger_percent`) goes to the challenger until a decision.

The split is sticky: rows are routed by a hash of `sticky_key` (e.g. `customer_id`), so one
customer always sees the same model, on every worker. Without `rollout.decision` the test runs
until someone promotes or rolls back by hand. With one, the deploy step waits for the rule's
labelled samples in both arms and ends the test itself (`ab_decision`): the challenger is
promoted, or taken off with the champion staying; the decision and its figures are written to
`<endpoint dir>/decisions/` and printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.serving.endpoint_config import EndpointConfig, ServedModel, drop_challenger, promote, read_config, update_config
from ml.serving.errors import DeployError
from ml.serving.rollouts import ab_decision
from ml.serving.rollouts.base import RolloutStrategy


class AB(RolloutStrategy):
    name = "ab"
    summary = "fixed challenger_percent, sticky by sticky_key, ended by its decision rule or by hand"

    def implied_by(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        """A resource whose `served` list gives the challenger alias a share of traffic."""
        served = {s.get("alias"): s.get("traffic_percentage", 0) for s in resource.get("served") or []}
        if not served.get("challenger"):
            return None
        return {"strategy": self.name, "challenger_percent": served["challenger"]}

    def challenger_percent(self, cfg: EndpointConfig, now: float) -> float:
        return cfg.rollout.challenger_percent

    def after_go_live(self, endpoint_dir: Path, model: ServedModel, *, by: str,
                      echo: Callable[[str], Any]) -> EndpointConfig | None:
        cfg = read_config(endpoint_dir)
        if cfg.rollout.decision is None:
            return None
        return watch_ab(endpoint_dir, model, by=by, echo=echo)


def watch_ab(endpoint_dir: Path, model: ServedModel, *, by: str, echo: Callable[[str], Any] = print,
             poll_s: float = 2.0) -> EndpointConfig:
    """Wait for the decision rule's samples, decide, and apply the decision to the endpoint."""
    from ml.monitoring.tables import labels_dir

    cfg = read_config(endpoint_dir)
    rule, r = cfg.rollout.decision, cfg.rollout
    if r.evidence_table is None:
        raise DeployError(f"a/b test of {model.name} v{model.version}: its rollout names no evidence_table")
    versions = {"champion": cfg.champion.version, "challenger": model.version}
    table = Path(r.evidence_table)
    since = r.started_at or cfg.updated_at
    echo(f"a/b: {r.challenger_percent:g}% on v{model.version}; deciding on {rule.metric} after {rule.min_samples} "
         f"labelled requests per arm (alpha {rule.alpha:g}, margin {rule.margin:g})")
    while True:
        now = read_config(endpoint_dir)
        if now.challenger is None or now.challenger.version != model.version:
            raise DeployError(f"a/b test of {model.name} v{model.version} ended elsewhere: {now.reason}")
        found = ab_decision.arms(table, labels_dir(table), versions, since, rule.metric)
        decision = ab_decision.decide(rule, found, versions)
        if decision is None and time.time() - since >= rule.max_wait_s:
            samples = {role: len(frame) for role, frame in found.items()}
            decision = ab_decision.no_decision(rule, samples, versions, time.time() - since)
        if decision is not None:
            break
        time.sleep(poll_s)
    path = ab_decision.write(endpoint_dir, decision)
    echo(f"a/b decision: {decision.winner} — {decision.why} (written to {path})")

    def apply(cfg: EndpointConfig):
        if cfg.challenger is None or cfg.challenger.version != model.version:
            return None
        if decision.winner == "challenger":
            return promote(cfg, model)
        return drop_challenger(cfg, "serving")

    return update_config(endpoint_dir, apply, by=by, reason=f"a/b decision: {decision.winner} — {decision.why}")
