"""What one serving worker does, independent of BentoML so it can be tested in-process.

- follows the endpoint config (a watcher thread polls it); loads every model of a new
  revision fully, then swaps one immutable `Snapshot` reference — requests already running
  keep the snapshot they started with, so an update never fails a request;
- routes rows to champion / challenger by the share the rollout strategy gives the
  challenger, and scores mirrored copies off the request path when the strategy mirrors;
- a challenger whose strategy sets guard bounds and that errors or is slow trips
  `LiveGuard`; the worker then rewrites the endpoint config without it (rollback on its
  own), and meanwhile its rows fall back to the champion so callers never see the broken model;
- every row and response goes to the inference table;
- a small batch takes the fast path where the use case and the model allow it: features by the
  use case's array twin (`fastpath.py`), scores by the model's compiled transforms
  (`compiled.py`), each used only once checked identical to the pandas / scikit-learn path.

The request and response fields, the features and the id/entity columns come from the
endpoint's use case (`ml.serving.schema.ServingSchema`); this module names none of them.

What each strategy does is asked of `ml.serving.rollouts`; this module names none of them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core import settings
from ml.serving import heap, rollouts, routing
from ml.serving.endpoint_config import EndpointConfig, drop_challenger, read_config, update_config
from ml.serving.errors import NoModelDeployed
from ml.serving.fastpath import FeatureBatch, Features
from ml.serving.guard import LiveGuard
from ml.serving.inference_log import InferenceLogger
from ml.serving.models import LoadedModel, load
from ml.serving.schema import ServingSchema, for_use_case

log = logging.getLogger("conveyor.serving")
SHADOW_MAX_PENDING = 64  # batches waiting for the shadow model before copies are dropped
# the inference table's own fields; a request column of the same name is logged as txn_<name>
LOGGED = frozenset({"timestamp", "request_id", "prediction", "probability", "model_name", "model_version",
                    "served_by", "latency_ms", "endpoint_revision", "env", "endpoint"})


@dataclass(frozen=True)
class Snapshot:
    config: EndpointConfig
    models: dict[str, LoadedModel] = field(default_factory=dict)  # role -> model

    def get(self, role: str) -> LoadedModel | None:
        return self.models.get(role)


class Engine:
    def __init__(self, endpoint_dir: Path | None, table_dir: Path | None, env: str = "local",
                 poll_s: float = 0.25, loader: Callable = load, metrics: Any = None,
                 schema: ServingSchema | None = None, name: str | None = None):
        self.env = env
        self.schema = schema or for_use_case(settings.SERVING_USE_CASE.get())
        self.features = Features(self.schema.use_case)
        self.name = name  # None: the environment's default endpoint
        self.endpoint_dir = Path(endpoint_dir) if endpoint_dir else None
        self.logger = InferenceLogger(table_dir)
        self.snapshot = Snapshot(EndpointConfig())
        self.load_error: str | None = None
        self.load_error_revision: int | None = None
        self.poll_s = poll_s
        self._loader = loader
        self._metrics = metrics
        self._guard: LiveGuard | None = None
        self._guard_revision = -1
        self._tripping = False
        self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._shadow_lock = threading.Lock()
        self._shadow_pending = 0
        self.shadow_dropped = 0
        from ml.features.online import LookupCounts  # rows per feature table and outcome, for /status

        self.feature_lookups = LookupCounts()
        self._stop = threading.Event()
        self._seen_mtime: int | None = None
        self._failed_mtime: int | None = None
        self._watcher: threading.Thread | None = None
        if self.endpoint_dir is not None:
            self._watcher = threading.Thread(target=self._watch, name="endpoint-config", daemon=True)
            self._watcher.start()

    # ---- following the endpoint config ------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # keep serving the old snapshot, report in /status
                self.load_error = f"{type(exc).__name__}: {exc}"
                log.exception("endpoint config refresh failed")
            self._stop.wait(self.poll_s)

    def refresh(self) -> bool:
        """Load a new config revision if there is one; True if the snapshot changed."""
        path = self.endpoint_dir / "endpoint.json"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime == self._seen_mtime or mtime == self._failed_mtime:
            return False  # unchanged, or a revision that already failed to load (no retry storm)
        try:
            return self._apply(mtime)
        except Exception:
            self._failed_mtime = mtime
            try:
                self.load_error_revision = read_config(self.endpoint_dir).revision
            except Exception:
                self.load_error_revision = None
            raise

    def _apply(self, mtime: int) -> bool:
        cfg = read_config(self.endpoint_dir)
        if cfg.revision == self.snapshot.config.revision and self.snapshot.config.revision:
            self._seen_mtime = mtime
            return False
        models = self._swap(cfg)
        self._seen_mtime = mtime
        if self._metrics:
            self._metrics.revision(cfg.revision)
        log.info("serving endpoint revision %s: %s", cfg.revision,
                 {r: m.version for r, m in models.items()})
        return True

    def _swap(self, cfg: EndpointConfig) -> dict[str, LoadedModel]:
        """Load every model of `cfg` not loaded yet, then swap the snapshot in one assignment."""
        current = self.snapshot
        by_version = {(m.spec.name, m.spec.version, m.spec.path or m.spec.uri): m for m in current.models.values()}
        models: dict[str, LoadedModel] = {}
        loaded = False
        for role in ("champion", "challenger", "candidate"):
            spec = getattr(cfg, role)
            if spec is None:
                continue
            key = (spec.name, spec.version, spec.path or spec.uri)
            known = by_version.get(key)
            models[role] = known or self._loader(spec)
            if models[role].columns is None:  # no signature: the use case's feature columns
                models[role].columns = self.schema.use_case.feature_names
            if known is None:
                self._compile(models[role])
                loaded = True
        self.snapshot = Snapshot(cfg, models)  # the atomic swap
        self.load_error = self.load_error_revision = None
        if loaded:
            heap.settle()  # new models are long-lived: out of the full GC passes' reach (heap.py)
        return models

    def _compile(self, model: LoadedModel) -> None:
        """Give `model` its compiled scorer when its pipeline compiles and scores the same as
        `predict_proba` on rows drawn from the use case's declared columns; else it keeps sklearn's path."""
        from ml.serving import compiled, fastpath

        if not isinstance(model, LoadedModel) or model.columns is None:
            return
        scorer = compiled.compile_scorer(model.model, model.columns, model.has_proba)
        if scorer is None:
            return
        uc = self.schema.use_case
        try:
            sample = FeatureBatch(self.features.names,
                                  frame=uc.build_features(pd.DataFrame(fastpath.sample_raw(uc)))).arrays
        except Exception as exc:  # the use case's features of drawn rows: no sample, no fast path
            log.info("model %s: no compiled scorer (%s)", model.version, exc)
            return
        problem = compiled.check(scorer, lambda cols: model.predict_proba(pd.DataFrame(cols)), sample)
        if problem:
            log.warning("model %s: compiled scorer not used (%s)", model.version, problem)
            return
        model.compiled = scorer

    # ---- scoring -----------------------------------------------------------------------
    def score(self, rows: list[dict], target: str = "traffic") -> list[dict]:
        started = time.perf_counter()
        limit_native_threads()
        snap = self.snapshot  # one read: this batch finishes on this snapshot
        champion = snap.get("candidate" if target == "candidate" else "champion")
        if champion is None:
            raise NoModelDeployed(target)
        rid = self.schema.id_column
        for r in rows:
            if not r.get(rid):
                r[rid] = uuid.uuid4().hex
        from ml.features import online as feature_tables  # looked-up features by entity key; rows note what happened

        looked_up = feature_tables.lookup(self.schema.use_case, rows, self.feature_lookups)
        frame = self.features.build(rows, looked_up)  # on-demand features too: the code training used
        cfg = snap.config
        roles = ["candidate" if target == "candidate" else "champion"] * len(rows)
        challenger = snap.get("challenger") if target == "traffic" else None
        strategy = rollouts.get(cfg.rollout.strategy)
        pct = strategy.challenger_percent(cfg, time.time()) if challenger is not None else 0.0
        if pct > 0:
            key, entity = cfg.rollout.sticky_key, self.schema.entity_key
            for i, r in enumerate(rows):
                k = str((r.get(key) if key else None) or (r.get(entity) if entity else None) or r[rid])
                if routing.goes_to_challenger(k, pct):
                    roles[i] = "challenger"
        probs = [0.0] * len(rows)
        by_role: dict[str, list[int]] = {}
        for i, role in enumerate(roles):
            by_role.setdefault(role, []).append(i)
        if "challenger" in by_role:
            idx = by_role.pop("challenger")
            t0 = time.perf_counter()
            try:
                p = _predict(challenger, frame.take(idx))
                for j, i in enumerate(idx):
                    probs[i] = float(p[j])
                self._observe_challenger(cfg, strategy, True, (time.perf_counter() - t0) * 1000, len(idx))
            except Exception as exc:
                log.warning("challenger %s failed on %d rows: %s", challenger.version, len(idx), exc)
                self._observe_challenger(cfg, strategy, False, 0.0, len(idx))
                for i in idx:
                    roles[i] = "champion"
                by_role.setdefault("champion", []).extend(idx)
        for idx in by_role.values():
            # the whole batch (the common case) goes as it is: no row-selection copy
            p = _predict(champion, frame if len(idx) == len(rows) else frame.take(idx))
            for j, i in enumerate(idx):
                probs[i] = float(p[j])
        latency_ms = (time.perf_counter() - started) * 1000
        now = time.time()
        out, records = [], []
        features = frame.records()
        for i, r in enumerate(rows):
            model = challenger if roles[i] == "challenger" else champion
            resp = self.schema.answer(r[rid], probs[i], model.spec.threshold, model.version, roles[i])
            out.append(resp)
            records.append(self._record(r, features[i], resp, latency_ms, now, cfg))
        self.logger.log(records)
        if self._metrics:
            self._metrics.observe(roles, [o["model_version"] for o in out], latency_ms / 1000)
        if challenger is not None and strategy.mirrors:  # logged as served_by=shadow
            self._submit_shadow(challenger, rows, frame, cfg)
        return out

    def _record(self, row, features: dict, resp, latency_ms, now, cfg) -> dict:
        rec = {(f"txn_{k}" if k in LOGGED else k): v for k, v in row.items()}
        rec.update(features)
        rec.update(request_id=resp[self.schema.id_column], **self.schema.logged(resp), model_name=self._model_name(cfg),
                   model_version=resp["model_version"], served_by=resp["served_by"],
                   latency_ms=round(latency_ms, 3), timestamp=now, endpoint_revision=cfg.revision, env=self.env)
        if self.name is not None:
            rec["endpoint"] = self.name
        return rec

    @staticmethod
    def _model_name(cfg: EndpointConfig) -> str:
        return cfg.champion.name if cfg.champion else ""

    def _submit_shadow(self, challenger: LoadedModel, rows, frame, cfg) -> None:
        """Bounded: when the shadow falls behind, copies are dropped (and counted), never queued forever."""
        with self._shadow_lock:
            if self._shadow_pending >= SHADOW_MAX_PENDING:
                self.shadow_dropped += len(rows)
                return
            self._shadow_pending += 1
        fut = self._shadow_pool.submit(self._shadow, challenger, rows, frame, cfg)
        fut.add_done_callback(lambda _: self._shadow_done())

    def _shadow_done(self) -> None:
        with self._shadow_lock:
            self._shadow_pending -= 1

    def _shadow(self, challenger: LoadedModel, rows, frame, cfg) -> None:
        limit_native_threads()
        t0 = time.perf_counter()
        try:
            p = _predict(challenger, frame)
        except Exception as exc:
            log.warning("shadow model %s failed: %s", challenger.version, exc)
            return
        latency_ms = (time.perf_counter() - t0) * 1000
        now = time.time()
        records = []
        features = frame.records()
        for i, r in enumerate(rows):
            resp = self.schema.answer(r[self.schema.id_column], float(p[i]), challenger.spec.threshold,
                                      challenger.version, "shadow")
            records.append(self._record(r, features[i], resp, latency_ms, now, cfg))
        self.logger.log(records)
        if self._metrics:
            self._metrics.observe(["shadow"] * len(rows), [challenger.version] * len(rows), latency_ms / 1000)

    # ---- live guard ----------------------------------------------------------------------
    def _observe_challenger(self, cfg: EndpointConfig, strategy: rollouts.RolloutStrategy, ok: bool,
                            latency_ms: float, n: int) -> None:
        if self._metrics and not ok:
            self._metrics.error("challenger", n)
        bounds = strategy.guard_bounds(cfg.rollout)
        if bounds is None or self.endpoint_dir is None:
            return
        if self._guard_revision != cfg.revision:
            self._guard, self._guard_revision = LiveGuard(bounds), cfg.revision
        reason = self._guard.record(ok, latency_ms, n)
        if reason and not self._tripping:
            self._tripping = True
            threading.Thread(target=self._roll_back_challenger, args=(cfg, reason), daemon=True).start()

    def _roll_back_challenger(self, tripped: EndpointConfig, reason: str) -> None:
        """Take the challenger that tripped the guard off the endpoint, unless the config moved on."""
        strategy = tripped.rollout.strategy

        def change(cfg: EndpointConfig):
            if cfg.rollout.strategy != strategy or cfg.challenger is None or \
                    cfg.challenger.version != tripped.challenger.version:
                return None  # someone already moved on
            return drop_challenger(cfg)

        try:
            update_config(self.endpoint_dir, change, by=f"{strategy}-guard@{os.getpid()}", reason=reason)
            log.warning("%s rolled back: %s", strategy, reason)
            self.refresh()
        finally:
            self._tripping = False

    # ---- status / lifecycle ------------------------------------------------------------
    def ready(self) -> bool:
        """Caught up with the endpoint config (an empty endpoint is ready: it answers 503)."""
        if self.endpoint_dir is None or not (self.endpoint_dir / "endpoint.json").exists():
            return True
        return read_config(self.endpoint_dir).revision == self.snapshot.config.revision

    def status(self) -> dict:
        snap = self.snapshot
        cfg = snap.config
        return {
            "env": self.env, "endpoint": self.name, "use_case": self.schema.use_case.name,
            "pid": os.getpid(), "revision": cfg.revision, "state": cfg.state,
            "strategy": cfg.rollout.strategy, "challenger_percent": cfg.canary_percent(),
            "models": {role: {"name": m.spec.name, "version": m.version, "loaded_in_s": round(m.loaded_in_s, 3)}
                       for role, m in snap.models.items()},
            "reason": cfg.reason, "load_error": self.load_error, "load_error_revision": self.load_error_revision,
            "logged_rows": self.logger.written, "shadow_dropped_rows": self.shadow_dropped,
            "feature_lookups": self.feature_lookups.snapshot(),  # {table: {hit, missing, stale, unavailable, defaults}}
            "inference_table": self.logger.status(),  # pending/dropped/error while its disk refuses writes
        }

    def close(self) -> None:
        self._stop.set()
        self._shadow_pool.shutdown(wait=True)
        self.logger.close()


def _predict(model: LoadedModel, batch: FeatureBatch):
    """The model's score per row: its compiled scorer on the feature arrays when it has one."""
    compiled = getattr(model, "compiled", None)
    return compiled(batch.arrays) if compiled is not None else model.predict_proba(batch.frame)


_thread_state = threading.local()


def limit_native_threads() -> None:
    """One OpenMP/BLAS thread per scoring call: requests are already concurrent, and tree
    ensembles (HistGradientBoosting) spend most of a single-row predict synchronising OpenMP
    threads otherwise — 100x slower on a busy host. OpenMP's setting is per calling thread,
    so this runs once in every thread that scores."""
    if getattr(_thread_state, "limited", False):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    _thread_state.limited = True


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine(metrics: Any = None) -> Engine:
    """The worker's engine, configured from the env vars infra sets for the serving process.

    It is the default endpoint's (`ml.serving.endpoints`; named ones are `router.EndpointSet`'s).
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            from ml.serving.endpoints import default_binding

            root = settings.ENDPOINT_DIR.get()
            _ENGINE = Engine(root, settings.INFERENCE_TABLE.get(), env=settings.ENV.get() or "local",
                             metrics=metrics.of(None) if metrics is not None else None,
                             schema=for_use_case(default_binding(root).use_case))
        return _ENGINE
