"""plan / deploy / destroy / summary of one bundle target in one environment.

The engine receives the environment's `EnvironmentOutputs` (dependency injection):
the CLI reads them from the Pulumi stack, tests hand in their own. State is written
after every applied action, and resources carry ownership tags, so a deploy killed
midway leaves a consistent env that the next deploy completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from bundles import artifact as artifacts
from bundles.envstore import (
    DeploymentInfo, DeploymentState, DeploymentStore, ResourceRecord, now_iso,
)
from bundles.errors import BundleError
from bundles.loader import ResolvedBundle
from bundles.mlflow_api import MlflowApi
from bundles.planner import Action, Plan, desired_specs, fingerprint, order_key, _changed_fields
from core.contract import EnvironmentOutputs

if TYPE_CHECKING:
    from bundles.cluster import ClusterJobs

TAG_DEPLOYMENT = "conveyor.deployment"
TAG_RESOURCE = "conveyor.resource"
OBJECT_KINDS = ("jobs", "serving_endpoints", "monitors")


@dataclass
class DeployResult:
    plan: Plan
    state: DeploymentState
    took_over_lock: str | None = None


class Engine:
    def __init__(self, bundle: ResolvedBundle, outputs: EnvironmentOutputs, persona: str | None = None,
                 on_action: Callable[[Action], None] | None = None, cluster: "ClusterJobs | None | bool" = True):
        """`cluster`: the kubernetes env's ClusterJobs; True = derive it from the stack file when
        the env runs on kubernetes (at first use), None = register jobs in storage only."""
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
        self._cluster = cluster

    @property
    def cluster(self) -> "ClusterJobs | None":
        if self._cluster is True:
            from bundles.cluster import cluster_jobs_for

            b = self.bundle
            self._cluster = cluster_jobs_for(self.outputs, b.stack, b.deployment_id(), b.target, b.git.commit, b.root)
        return self._cluster

    # --- state -------------------------------------------------------------------------

    def _empty_state(self) -> DeploymentState:
        b = self.bundle
        return DeploymentState(bundle=b.name, target=b.target, env=self.outputs.env, mode=b.mode,
                               deployment_id=b.deployment_id())

    def state(self) -> DeploymentState:
        return self.store.load_state(self._empty_state())

    def _username(self, principal: str) -> str:
        cred = self.outputs.credentials.get(principal)
        if cred is None:
            known = ", ".join(sorted(self.outputs.credentials))
            raise BundleError(f"grant to {principal!r}: no such persona in environment {self.outputs.env!r} (known: {known})")
        return cred.username

    # --- plan --------------------------------------------------------------------------

    def _exists(self, rec: ResourceRecord) -> bool:
        """Whether a recorded resource is still really there (repairs manual deletes, killed deploys)."""
        if rec.kind == "experiments":
            exp = self.api.experiment(rec.id) if rec.id else None
            return bool(exp and exp.get("lifecycle_stage") == "active" and exp.get("name") == rec.name)
        if rec.kind == "registered_models":
            return self.api.registered_model(rec.name) is not None
        if rec.kind in OBJECT_KINDS:
            key = rec.key.split(".", 1)[1]
            if self.store.read_object(rec.kind, key) is None:
                return False
            return rec.kind != "jobs" or self.cluster is None or self.cluster.has(key, rec.spec)
        if rec.kind == "artifact":
            return self.store.has_code(rec.spec.get("hash", ""))
        return True

    def plan(self) -> Plan:
        art = artifacts.describe(self.bundle.root, self.bundle.name, self.bundle.packages)
        self._artifact = art
        desired = desired_specs(self.bundle, art.hash)
        state = self.state()
        for spec in desired.values():
            for grant in spec[2].get("grants", []):
                self._username(grant["principal"])
        if self.bundle.resources.jobs and self.bundle.run_as not in self.outputs.credentials:
            raise BundleError(f"jobs run as {self.bundle.run_as!r}, which has no credentials in environment "
                              f"{self.outputs.env!r} (known: {', '.join(sorted(self.outputs.credentials))})")
        actions: list[Action] = []
        for key, (kind, name, spec) in desired.items():
            rec = state.resources.get(key)
            fp = fingerprint(spec)
            if rec is None:
                actions.append(Action("create", key, kind, name, spec=spec))
            elif rec.fingerprint != fp:
                changed = _changed_fields(rec.spec, spec)
                actions.append(Action("update", key, kind, name, reason="changed: " + ", ".join(changed), changed=changed, spec=spec))
            elif not self._exists(rec):
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
            for action in plan.actions:
                if action.action == "unchanged":
                    continue
                self.on_action(action)
                self._apply(action, state)
                self.store.record_action(state, action.key)  # a kill leaves a true record
                changes += 1
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
        return DeployResult(plan=plan, state=state,
                            took_over_lock=f"{took.user} (pid {took.pid}) since {took.since}" if took else None)

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

    # --- apply one action -------------------------------------------------------------------

    def _apply(self, action: Action, state: DeploymentState) -> None:
        old = state.resources.get(action.key)
        if action.action == "delete":
            if old is not None:
                getattr(self, f"_delete_{old.kind}")(old)
            state.resources.pop(action.key, None)
            if action.kind == "artifact":
                state.artifact = state.wheel = None
            return
        rec = getattr(self, f"_put_{action.kind}")(action, old)
        rec.spec = action.spec or {}
        rec.fingerprint = fingerprint(rec.spec)
        state.resources[action.key] = rec
        if action.kind == "artifact":
            state.artifact = rec.spec["hash"]
            state.wheel = rec.name

    # artifact
    def _put_artifact(self, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        art = self._artifact
        wheel_dir = self.store.artifact_dir(art.hash)
        wheel = wheel_dir / art.wheel_name
        if not wheel.exists():
            artifacts.build_wheel(self.bundle.root, self.bundle.name, art, wheel_dir)
        self.store.put_code(art.hash, wheel)
        if old and old.spec.get("hash") and old.spec["hash"] != art.hash:
            self.store.prune_code(keep={art.hash, old.spec["hash"]})
        return ResourceRecord(kind="artifact", key="artifact", name=art.wheel_name, id=art.hash, fingerprint="")

    def _delete_artifact(self, rec: ResourceRecord) -> None:
        self.store.prune_code(keep=set())

    # MLflow: common grant handling
    def _sync_grants(self, resource_type: str, resource_id: str, spec: dict, old: ResourceRecord | None) -> list[dict]:
        # The deploying persona keeps the MANAGE it has as creator; downgrading itself would
        # lock it out of the rest of this deploy.
        wanted = [
            {"principal": g["principal"], "username": self._username(g["principal"]), "permission": g["permission"]}
            for g in spec.get("grants", []) if g["principal"] != self.persona
        ]
        before = {g["username"]: g for g in (old.grants if old else [])}
        after = {g["username"] for g in wanted}
        for username in before:
            if username not in after:
                self.api.revoke(username, resource_type, resource_id)
        for g in wanted:
            self.api.grant(g["username"], resource_type, resource_id, g["permission"])
        return wanted

    def _check_owner(self, what: str, name: str, tags: dict[str, str]) -> None:
        """Never take over what another deployment manages (two bundles, one name)."""
        owner = tags.get(TAG_DEPLOYMENT)
        if owner and owner != self.bundle.deployment_id():
            raise BundleError(f"{what} {name!r} is managed by deployment {owner!r}; rename it in this bundle "
                              f"or destroy that deployment first")

    def _tags(self, action: Action) -> dict[str, str]:
        tags = dict(action.spec.get("tags") or {})
        tags[TAG_DEPLOYMENT] = self.bundle.deployment_id()
        tags[TAG_RESOURCE] = action.key
        return tags

    # experiments
    def _put_experiments(self, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        spec, name = action.spec, action.spec["name"]
        exp = self.api.experiment(old.id) if old and old.id else None
        created = old.created if old else True
        if exp is None:
            exp = self.api.experiment_by_name(name)
            if exp is None:
                exp_id = self.api.create_experiment(name, self._tags(action))
                exp = {"experiment_id": exp_id, "name": name, "lifecycle_stage": "active", "tags": []}
                created = True
            else:
                tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
                self._check_owner("experiment", name, tags)
                created = tags.get(TAG_DEPLOYMENT) == self.bundle.deployment_id()
        exp_id = exp["experiment_id"]
        if exp.get("lifecycle_stage") == "deleted":
            self.api.restore_experiment(exp_id)
        if exp.get("name") != name:
            self.api.rename_experiment(exp_id, name)
        for k, v in self._tags(action).items():
            if k in (TAG_DEPLOYMENT, TAG_RESOURCE) and not created:
                continue  # never claim ownership of an experiment we adopted
            self.api.set_experiment_tag(exp_id, k, v)
        self.api.set_experiment_tag(exp_id, "mlflow.note.content", spec.get("description") or "")
        grants = self._sync_grants("experiment", exp_id, spec, old)
        return ResourceRecord(kind="experiments", key=action.key, name=name, id=exp_id, fingerprint="",
                              created=created, grants=grants)

    def _delete_experiments(self, rec: ResourceRecord) -> None:
        if not rec.id:
            return
        if rec.created:
            self.api.delete_experiment(rec.id)
        else:
            for g in rec.grants:
                self.api.revoke(g["username"], "experiment", rec.id)

    # registered models
    def _put_registered_models(self, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        spec, name = action.spec, action.spec["name"]
        created = old.created if old else True
        if old and old.name and old.name != name and self.api.registered_model(old.name) is not None:
            self.api.rename_registered_model(old.name, name)
        model = self.api.registered_model(name)
        if model is None:
            self.api.create_registered_model(name, spec.get("description"), self._tags(action))
            created = True
        else:
            if old is None:
                tags = {t["key"]: t["value"] for t in model.get("tags", [])}
                self._check_owner("registered model", name, tags)
                created = tags.get(TAG_DEPLOYMENT) == self.bundle.deployment_id()
            self.api.update_registered_model(name, spec.get("description") or "")
            for k, v in self._tags(action).items():
                if k in (TAG_DEPLOYMENT, TAG_RESOURCE) and not created:
                    continue
                self.api.set_registered_model_tag(name, k, v)
        grants = self._sync_grants("registered_model", name, spec, old)
        return ResourceRecord(kind="registered_models", key=action.key, name=name, id=name, fingerprint="",
                              created=created, grants=grants)

    def _delete_registered_models(self, rec: ResourceRecord) -> None:
        if rec.created:
            self.api.delete_registered_model(rec.name)
        else:
            for g in rec.grants:
                self.api.revoke(g["username"], "registered_model", rec.name)

    # objects registered in env storage (jobs + schedules, endpoints, monitors)
    def _put_object(self, action: Action) -> ResourceRecord:
        kind, key = action.kind, action.key.split(".", 1)[1]
        self.store.write_object(kind, key, {
            "key": key,
            "deployment": self.bundle.deployment_id(),
            "bundle": self.bundle.name,
            "target": self.bundle.target,
            "env": self.outputs.env,
            "mode": self.bundle.mode,
            "spec": action.spec,
        })
        return ResourceRecord(kind=kind, key=action.key, name=action.name, id=key, fingerprint="")

    def _delete_object(self, rec: ResourceRecord) -> None:
        self.store.delete_object(rec.kind, rec.key.split(".", 1)[1])

    _put_serving_endpoints = _put_monitors = lambda self, action, old: self._put_object(action)
    _delete_serving_endpoints = _delete_monitors = _delete_object

    # jobs: registered in storage; on a kubernetes env their schedules are CronJobs
    def _put_jobs(self, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        rec = self._put_object(action)
        if self.cluster is not None:
            self.cluster.sync(action.key.split(".", 1)[1], action.spec or {})
        return rec

    def _delete_jobs(self, rec: ResourceRecord) -> None:
        if self.cluster is not None:
            self.cluster.remove(rec.key.split(".", 1)[1])
        self._delete_object(rec)

    # --- summary ----------------------------------------------------------------------------

    def summary(self) -> dict:
        state = self.state()
        base = self.outputs.tracking_uri.rstrip("/")
        resources: dict[str, dict[str, dict]] = {}
        for key, rec in sorted(state.resources.items()):
            if rec.kind == "artifact":
                continue
            url = None
            if rec.kind == "experiments":
                url = f"{base}/#/experiments/{rec.id}"
            elif rec.kind == "registered_models":
                url = f"{base}/#/models/{rec.name}"
            elif rec.kind == "serving_endpoints":
                url = self.outputs.serving_url
            entry = {"name": rec.name, "url": url}
            if rec.kind == "experiments":
                entry["id"] = rec.id
            if rec.kind == "jobs":
                sched = rec.spec.get("schedule")
                entry["schedule"] = f"{sched['cron']} ({sched['pause_status'].lower()})" if sched else None
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
