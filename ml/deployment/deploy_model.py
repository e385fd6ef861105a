"""Task `deploy_model`: challenger vs champion on held-out data; decides which version should serve.

The first model (no champion yet) must beat the configured baseline
(`deployment.baseline`). The comparison (metrics side by side, a plot, the decision)
is logged to the challenger's MLflow run. A promoted challenger keeps the `challenger` alias and
is packaged: imported into the env's BentoML model store (`ml.deployment.package`, labelled with
registered model, version, data version and git sha), from which the endpoint loads it by tag.
The decided version is the task value `champion_version` (the new one when promoted, else the
current champion's, empty when there is none); `update_endpoint` rolls it out and only then
moves the `champion` alias and writes `storage.models/<registered model>/champion.json`
(`ml.deployment.promote`; docs/model-handoff.md). Until the rollout completes, `champion` names
what the endpoint serves. Held-out scores computed earlier in the job run (`train`'s of the
challenger, `validate_model`'s of the champion) are reused when their key proves they are that
version's on these rows (`ml.training.held_out_scores`); otherwise the model is scored here.
"""

from __future__ import annotations

import datetime as dt

from core import runtime
from ml import task
from ml.registry import CHALLENGER, CHAMPION, VALIDATION_TAG, alias_version, load_model, parse_uri
from ml.training import held_out_scores
from ml.training.estimator import evaluate
from ml.usecase.metrics import beats, bound_operator, improvement, meets


def decide(primary: str, min_improvement: float, challenger: dict, champion: dict | None, baseline: dict,
           task: str = "binary_classification") -> tuple[bool, str]:
    """(promote?, why). Against the baseline every configured metric must be met; against a
    champion, the primary metric must improve by `min_improvement` — which way is better
    follows the metric of `task` (an RMSE improves by going down)."""
    if champion is None:
        short = [f"{m} {challenger.get(m, float('nan')):.4f} misses baseline {bound_operator(task, m)} {v}"
                 for m, v in baseline.items() if not meets(task, m, challenger.get(m, float("nan")), v)]
        if short:
            return False, "first model below baseline: " + "; ".join(short)
        return True, "first model; meets baseline " + ", ".join(f"{m}{bound_operator(task, m)}{v}" for m, v in baseline.items())
    gain = improvement(task, primary, challenger[primary], champion[primary])
    if beats(task, primary, challenger[primary], champion[primary], min_improvement):  # a tie is no improvement
        return True, f"{primary} {challenger[primary]:.4f} vs champion {champion[primary]:.4f} ({gain:+.4f} >= {min_improvement})"
    return False, (f"{primary} {challenger[primary]:.4f} vs champion {champion[primary]:.4f} ({gain:+.4f}: "
                   f"not better by > 0 and >= {min_improvement})")


def _comparison_plot(challenger: dict, champion: dict | None, baseline: dict, labels: tuple[str, str],
                     metrics: list[str] | None = None, task: str = "binary_classification"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = metrics or ["roc_auc", "pr_auc", "f1", "precision", "recall"]
    other = champion or {m: baseline.get(m, np.nan) for m in metrics}
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.bar(x - 0.2, [challenger[m] for m in metrics], 0.4, label=labels[0], color="#4878d0")
    ax.bar(x + 0.2, [other.get(m, np.nan) for m in metrics], 0.4, label=labels[1], color="#ee854a")
    ax.set_xticks(x, [f"{m} {'↑' if bound_operator(task, m) == '>=' else '↓'}" for m in metrics])
    if all(0 <= v <= 1 for v in [*(challenger[m] for m in metrics)] if v == v):
        ax.set_ylim(0, 1)
    ax.set_title("Challenger vs champion on held-out data")
    ax.legend()
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.deployment.deploy_model", __doc__)
    ap.add_argument("--model-uri", default=None, help="challenger models:/<name>/<version> (default: from train, else the challenger alias)")
    ap.add_argument("--no-package", action="store_true", help="decide only; skip the import into the BentoML model store")
    args = ap.parse_args(argv)

    def body() -> int:
        import mlflow

        ctx = runtime.context()
        params = task.params_from(args)
        uc = task.use_case_from(args)
        dp = params.deployment
        client = mlflow.MlflowClient()
        uri = task.upstream("train", "model_uri", args.model_uri)
        if uri:
            name, version = parse_uri(uri)
        else:
            name = task.model_name(args, ctx)
            chall = alias_version(client, name, CHALLENGER)
            if chall is None:
                raise task.TaskError(f"{name} has no {CHALLENGER}: run validate_model first")
            version = chall.version
        mv = client.get_model_version(name, version)
        if mv.tags.get(VALIDATION_TAG) != "PASSED":
            raise task.TaskError(f"models:/{name}/{version} is not validated ({VALIDATION_TAG}={mv.tags.get(VALIDATION_TAG)}); refusing to deploy")
        data_version = mv.tags["data_version"]
        # train's held-out rows when they are this data version's, else gold read and split; digest:
        # their rows_digest, once for the challenger and the champion
        data, digest = held_out_scores.held_out_rows(ctx, params, data_version, uc)
        threshold = params.train.threshold

        def scores(of):  # this job run's earlier scores of that version on these rows, else scored here (and kept)
            return held_out_scores.of_version(uc, params, of, data_version, data, digest)

        chall_predicted, challenger = scores(mv)
        chall_metrics = evaluate(uc, challenger, data, threshold, chall_predicted)
        champ_mv = alias_version(client, name, CHAMPION)
        champ_metrics = None
        if champ_mv is not None and champ_mv.version != version:
            champ_metrics = evaluate(uc, None, data, threshold, scores(champ_mv)[0])
        # classification: too few positive cases held out is not evidence enough to replace a champion
        positives = int(data[uc.label].sum()) if uc.is_classification else None
        if champ_mv is not None and champ_mv.version == version:
            promote, why = True, f"v{version} is already champion"
        elif champ_metrics is not None and positives is not None \
                and positives < params.model_validation.min_held_out_positives:
            promote, why = False, (f"only {positives} positive cases ({uc.label}) in held-out data: not enough "
                                   f"evidence to replace champion v{champ_mv.version}")
        else:
            promote, why = decide(dp.primary_metric, dp.min_improvement, chall_metrics, champ_metrics, dp.baseline, uc.task)
        comparison = {
            "challenger": {"version": version, "metrics": chall_metrics},
            "champion": {"version": champ_mv.version, "metrics": champ_metrics} if champ_metrics else None,
            "baseline": dp.baseline if champ_metrics is None else None,
            "held_out": {"data_version": data_version, "rows": len(data)},
            "primary_metric": dp.primary_metric, "promoted": promote, "reason": why,
            "decided_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        with mlflow.start_run(run_id=mv.run_id):
            mlflow.log_dict(comparison, "deployment_comparison.json")
            mlflow.log_metrics({f"deploy_challenger_{k}": v for k, v in chall_metrics.items()})
            if champ_metrics:
                mlflow.log_metrics({f"deploy_champion_{k}": v for k, v in champ_metrics.items()})
            fig = _comparison_plot(chall_metrics, champ_metrics, dp.baseline,
                                   (f"challenger v{version}", f"champion v{champ_mv.version}" if champ_metrics else "baseline"),
                                   None if uc.is_classification else list(uc.metrics.names), uc.task)
            mlflow.log_figure(fig, "plots/challenger_vs_champion.png")
            mlflow.set_tag("deployment_decision", "promoted" if promote else "kept_champion")
        client.set_model_version_tag(name, version, "deployment_decision", "promoted" if promote else "kept_champion")
        task.publish("promoted", promote)
        task.publish("model_name", name)
        if not promote:
            # what update_endpoint then rolls out: the champion that serves (empty: none yet, nothing to roll out)
            task.publish("champion_version", champ_mv.version if champ_mv else "")
            print(f"deploy_model: v{version} not promoted — {why}; champion stays {('v' + champ_mv.version) if champ_mv else 'none'}")
            return 0
        # the decision only: `champion` moves when the rollout completes (update_endpoint → ml.deployment.promote)
        client.set_registered_model_alias(name, CHALLENGER, version)
        task.publish("champion_version", version)
        task.publish("champion_uri", f"models:/{name}/{version}")
        print(f"deploy_model: v{version} promoted — {why}; the endpoint rolls it out, alias champion moves when that completes"
              + (f" (until then: v{champ_mv.version})" if champ_mv is not None and champ_mv.version != version else ""))
        if args.no_package:
            return 0
        from ml.deployment.package import import_model

        home = ctx.storage_path("bentos")
        bentoml_model = import_model(
            name, version, bentoml_home=home, data_version=data_version,
            git_sha=mv.tags.get("git_sha", ctx.git_sha), threshold=threshold, use_case=uc.name,
            sk_model=challenger if challenger is not None else load_model(name, version),
        )
        client.set_model_version_tag(name, version, "bentoml_model", bentoml_model)
        task.publish("bentoml_model", bentoml_model)
        print(f"deploy_model: imported {bentoml_model} into the env's BentoML model store (BENTOML_HOME={home})")
        return 0

    return task.run_task("deploy_model", body)


if __name__ == "__main__":
    raise SystemExit(main())
