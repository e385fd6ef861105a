"""plan / deploy / destroy / summary of one bundle target in one environment.

The engine receives the environment's `EnvironmentOutputs` (dependency injection):
the CLI reads them from the Pulumi stack, tests hand in their own. What is done to one
resource is its kind's business (`bundles.resources`); the engine orders the actions,
holds the deploy lock and writes state after every applied action. With ownership tags
on resources, a deploy killed midway leaves a consistent env that the next deploy completes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bundles import artifact as artifacts
from bundles.backends import JobBackend, JobTarget, backend_for, storage_only
from bundles.envstore import DeploymentInfo, DeploymentState, DeploymentStore, now_iso
from bundles.errors import BundleError
from bundles.loader import ResolvedBundle
from bundles.mlflow_api import MlflowApi
from bundles.planner import Action, Plan, changed_fields, desired_specs, fingerprint, order_key
from bundles.resources import KINDS, DeployContext
from core.contract import EnvironmentOutputs

_PLATFORM = object()  # `jobs` default: the backend of the env's platform


@dataclass
class DeployResult:
    plan: Plan
    state: DeploymentState
    took_over_lock: str | None = None


class Engine:
    def __init__(self, bundle: ResolvedBundle, outputs: EnvironmentOutputs, persona: str | None = None,
                 on_action: Callable[[Action], None] | None = None, jobs: JobBackend | None | object = _PLATFORM):
        """`jobs`: where deployed jobs are scheduled. Default: the backend of the env's platform
        (`bundles.backends.backend_for`); None: env storage only, whatever the platform."""
        self.bundle = bundle
        self.outputs = outputs
        self.persona = persona or bundle.run_as
        if self.persona not in outputs.credentials:
            known = ", ".join(sorted(outputs.credentials))
            raise BundleError(f"persona {self.persona!r} has no credentials in environment {outputs.env!r} (known: {known})")
        cred = outputs.credentials[self.persona]
        self.api = MlflowApi(outputs.tracking_uri, cred.username, cred.password)
        self.store = DeploymentStore(outputs, bundle.deployment_id())
        self.on_action = on_action or (lambda a: None)
        target = JobTarget.of(bundle, outputs)
        if jobs is _PLATFORM:
            jobs = backend_for(target)
        self.jobs: JobBackend = storage_only(target) if jobs is None else jobs  # type: ignore[assignment]
        self.ctx = DeployContext(bundle=bundle, outputs=outputs, persona=self.persona, api=self.api,
                                 store=self.store, jobs=self.jobs)

    # --- state -------------------------------------------------------------------------

    def _empty_state(self) -> DeploymentState:
        b = self.bundle
        return DeploymentState(bundle=b.name, target=b.target, env=self.outputs.env, mode=b.mode,
                               deployment_id=b.deployment_id())

    def state(self) -> DeploymentState:
        return self.store.load_state(self._empty_state())

    # --- plan --------------------------------------------------------------------------

    def plan(self) -> Plan:
        art = artifacts.describe(self.bundle.root, self.bundle.name, self.bundle.packages)
        self.ctx.artifact = art
        desired = desired_specs(self.bundle, art.hash)
        state = self.state()
        for key, (kind, _, spec) in desired.items():
            KINDS.get(kind).check(self.ctx, key, spec)
        actions: list[Action] = []
        for key, (kind, name, spec) in desired.items():
            rec = state.resources.get(key)
            fp = fingerprint(spec)
            if rec is None:
                actions.append(Action("create", key, kind, name, spec=spec))
            elif rec.fingerprint != fp:
                changed = changed_fields(rec.spec, spec)
                actions.append(Action("update", key, kind, name, reason="changed: " + ", ".join(changed), changed=changed, spec=spec))
            elif not KINDS.get(kind).exists(self.ctx, rec):
                actions.append(Action("create", key, kind, name, reason="missing in the environment", spec=spec))
            else:
                actions.append(Action("unchanged", key, kind, name, spec=spec))
        for key, rec in state.resources.items():
            if key not in desired:
                actions.append(Action("delete", key, rec.kind, rec.name, reason="removed from the bundle"))
        actions.sort(key=order_key)
        return Plan(target=self.bundle.target, env=self.outputs.env, deployment_id=self.bundle.deployment_id(), actions=actions)

    # --- checks --------------------------------------------------------------------------

    def check_production(self, force: bool) -> None:
        b = self.bundle
        if b.mode != "production":
            return
        want = (b.target_cfg.git.branch if b.target_cfg.git else None)
        if want and b.git.branch != want and not force:
            raise BundleError(
                f"target {b.target!r} deploys only from git branch {want!r} (current: {b.git.branch or 'detached HEAD'}); "
                f"pass --force to override"
            )
        if not b.target_cfg.run_as:
            raise BundleError(f"production target {b.target!r} needs `run_as`")

    # --- deploy --------------------------------------------------------------------------

    def deploy(self, force: bool = False, force_lock: bool = False) -> DeployResult:
        self.check_production(force)
        with self.store.lock(self.persona, self.bundle.user, "deploy", force=force_lock) as lock:
            plan = self.plan()
            state = self.state()
            changes = 0
            shipped = False
            for action in plan.actions:
                if action.action == "unchanged":
                    continue
                self.on_action(action)
                before = state.resources.get(action.key)
                self._apply(action, state)
                self.store.record_action(state, action.key)  # a kill leaves a true record
                changes += 1
                if action.kind == "artifact" and action.action != "delete":
                    # new code reaches the endpoint before anything that uses it changes
                    self._ship_serving_code(state, before)
                    shipped = True
            if not shipped:  # same code: still make sure the endpoint runs it (a retry after a failure)
                self._ship_serving_code(state, None)
            if changes:
                state.sequence += 1
                info = DeploymentInfo(
                    sequence=state.sequence, git_sha=self.bundle.git.commit, git_branch=self.bundle.git.branch,
                    deployer=self.bundle.user, persona=self.persona, time=now_iso(),
                    artifact=state.artifact, changes=changes,
                )
                state.last = info
                state.history = (state.history + [info])[-50:]
            if changes or self.store.has_journal():
                self.store.save_state(state)
            took = lock.took_over
        # after the lock: the deployment is complete; its jobs run as deployed
        from bundles.bootstrap import bootstrap

        bootstrap(self.bundle, self.outputs, plan, self.jobs)
        return DeployResult(plan=plan, state=state,
                            took_over_lock=f"{took.user} (pid {took.pid}) since {took.since}" if took else None)

    def _ship_serving_code(self, state: DeploymentState, before) -> None:
        """Roll the env's endpoint onto the deployed code (`bundles.serving_code`). When the new
        code does not start, the deployment goes back to its previous artifact, so jobs and the
        endpoint keep running the same code, and the deploy fails with the launcher's reason."""
        from bundles.serving_code import ship

        try:
            ship(self.bundle, self.outputs, state)
        except BundleError:
            if before is not None:
                state.resources["artifact"] = before
                KINDS.get("artifact").record(state, before)
                self.store.record_action(state, "artifact")
                self.store.save_state(state)
            raise

    def destroy(self, force_lock: bool = False) -> list[Action]:
        if not self.store.exists():
            return []
        done: list[Action] = []
        with self.store.lock(self.persona, self.bundle.user, "destroy", force=force_lock):
            state = self.state()
            actions = [Action("delete", key, rec.kind, rec.name) for key, rec in state.resources.items()]
            for action in sorted(actions, key=order_key):
                self.on_action(action)
                self._apply(action, state)
                self.store.record_action(state, action.key)
                done.append(action)
            self.store.wipe()  # under the lock: a deploy waiting for it finds a clean slate
        self.store.remove()
        return done

    def _apply(self, action: Action, state: DeploymentState) -> None:
        """One action through its kind; the state records what is now true."""
        kind = KINDS.get(action.kind)
        old = state.resources.get(action.key)
        if action.action == "delete":
            if old is not None:
                kind.delete(self.ctx, old)
            state.resources.pop(action.key, None)
            kind.record(state, None)
            return
        rec = kind.put(self.ctx, action, old)
        rec.spec = action.spec or {}
        rec.fingerprint = fingerprint(rec.spec)
        state.resources[action.key] = rec
        kind.record(state, rec)

    # --- summary ----------------------------------------------------------------------------

    def summary(self) -> dict:
        state = self.state()
        resources: dict[str, dict[str, dict]] = {}
        for key, rec in sorted(state.resources.items()):
            entry = KINDS.get(rec.kind).summary(self.ctx, rec) if rec.kind in KINDS else {"name": rec.name, "url": None}
            if entry is not None:
                resources.setdefault(rec.kind, {})[key.split(".", 1)[1]] = entry
        return {
            "bundle": self.bundle.name,
            "target": self.bundle.target,
            "env": self.outputs.env,
            "mode": self.bundle.mode,
            "deployment": self.bundle.deployment_id(),
            "tracking_uri": self.outputs.tracking_uri,
            "serving_url": self.outputs.serving_url,
            "deployed": state.last is not None or bool(state.resources),
            "last_deployment": state.last.model_dump() if state.last else None,
            "artifact": state.artifact,
            "resources": resources,
        }
