"""Condition task `changed`: is there anything new to train on? No empty retrains.

Compares this run's data version (from ingest), code version and params version
(`ml.training.fingerprint`) with the champion's tags, and with the newest version already
judged (validation PASSED or FAILED) that was trained from the same three. When they are all
equal, training would only make the same model again: the task says so, sets outcome
`false`, and the job's later tasks are skipped — the run ends successfully, nothing is
registered, no alias moves. Otherwise outcome `true` and the reason (what changed).

Publishes `outcome`, `reason`, `code_version`, `params_version`; tags the job run's MLflow run
with `training_decision` (`train` or `nothing_changed`) and the reason.
"""

from __future__ import annotations

from core import runtime
from ml import task
from ml.registry import CHAMPION, VALIDATION_TAG, alias_version
from ml.training import fingerprint

JUDGED = ("PASSED", "FAILED")


def decide(now: dict[str, str], champion, judged: list) -> tuple[bool, str]:
    """(train?, why) for `now` (the three versions) against the champion's model version and the
    judged versions (newest first)."""
    def same(mv) -> bool:
        return all(mv.tags.get(k) == v for k, v in now.items())

    shown = ", ".join(f"{k.removesuffix('_version')} {v[:12]}" for k, v in now.items())
    if champion is not None and same(champion):
        return False, f"nothing changed: {shown} are champion v{champion.version}'s; not training, nothing registered"
    twin = next((mv for mv in judged if same(mv)), None)
    if twin is not None:
        return False, (f"nothing changed: {shown} are v{twin.version}'s (validation {twin.tags.get(VALIDATION_TAG)}); "
                       f"training again would make the same model; nothing registered")
    if champion is None:
        return True, "no champion yet"
    changed = [f"{k.removesuffix('_version')} {str(champion.tags.get(k) or 'unknown')[:12]} -> {v[:12]}"
               for k, v in now.items() if champion.tags.get(k) != v]
    return True, f"changed since champion v{champion.version}: " + "; ".join(changed)


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.training.changed", __doc__)
    ap.add_argument("--data-version", default=None, help="gold md5 (default: from the ingest task)")
    ap.add_argument("--run-id", default=None, help="the job run's MLflow run (default: the ingest task's)")
    args = ap.parse_args(argv)

    def body() -> int:
        import mlflow

        ctx = runtime.context()
        uc = task.use_case_from(args)
        params = task.params_from(args)
        data_version = task.upstream("ingest", "data_version", args.data_version)
        if not data_version:
            raise task.TaskError("no data version: run `ingest` first or pass --data-version")
        now = fingerprint.of_run(uc, params, data_version)
        name = task.model_name(args, ctx)
        client = mlflow.MlflowClient()
        champion = alias_version(client, name, CHAMPION)
        # a search, so a model not registered yet is no versions (not an error)
        judged = sorted((mv for mv in client.search_model_versions(f"name='{name}'") if mv.tags.get(VALIDATION_TAG) in JUDGED),
                        key=lambda mv: int(mv.version), reverse=True)
        train, why = decide(now, champion, judged)
        run_id = task.upstream("ingest", "mlflow_run_id", args.run_id)
        if run_id:
            client.set_tag(run_id, "training_decision", "train" if train else "nothing_changed")
            client.set_tag(run_id, "training_decision_reason", why)
        for key in ("code_version", "params_version"):
            task.publish(key, now[key])
        task.publish("reason", why)
        task.publish("outcome", train)
        print(f"changed: {why}" + ("" if train else " (the job ends here, successfully)"))
        return 0

    return task.run_task("changed", body)


if __name__ == "__main__":
    raise SystemExit(main())
