"""Task `train`: fit a use case's estimator on this run's data version, log it to MLflow, register it.

Publishes `model_uri` (models:/<name>/<version>), `model_name`, `model_version`.
The new version starts with tag `model_validation_status=PENDING`; `validate_model`
decides. The run and the version are tagged with `data_version`, `code_version` and
`params_version` (`ml.training.fingerprint`): what the `changed` task compares next time.
Its scores on the held-out rows are kept for the job run (`ml.training.held_out_scores`):
`validate_model` and `deploy_model` judge the same version on the same rows without scoring again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core import runtime
from ml import task
from ml.data.versioning import read_version, workspace_for
from ml.features.lookups import feature_table_tags
from ml.registry import VALIDATION_TAG
from ml.training import fingerprint, held_out_scores, plots
from ml.training.estimator import evaluate, fit, predict, read_training_table, release_arrow_memory, split

if TYPE_CHECKING:
    import pandas as pd

# Types in our own pipelines that skops does not trust by default (we wrote the file).
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def pip_requirements() -> list[str]:
    """Pinned from the running env: skips MLflow's slow requirement inference."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "skops", "numpy", "pandas", "mlflow")]


def _sample(rows: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """`size` of `rows`, drawn with `seed` (all of them when `size` is 0 or not smaller)."""
    return rows if not size or len(rows) <= size else rows.sample(n=size, random_state=seed)


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.training.train", __doc__)
    ap.add_argument("--data-version", default=None, help="gold md5 (default: from the ingest task)")
    ap.add_argument("--run-id", default=None, help="MLflow run to log into (default: the job run's)")
    args = ap.parse_args(argv)

    def body() -> int:
        import mlflow
        from mlflow.models import infer_signature

        ctx = runtime.context()
        uc = task.use_case_from(args)
        params = task.params_from(args)
        tp = params.train
        data_version = task.upstream("ingest", "data_version", args.data_version)
        if not data_version:
            raise task.TaskError("no data version: run `ingest` first or pass --data-version")
        ws, remote = workspace_for(ctx, uc.name)
        gold = read_training_table(uc, read_version(ws, remote, data_version))
        train_df, test_df = split(uc, gold, params.split.test_fraction, params.split.seed)
        del gold  # the two parts are copies: at millions of rows this is the largest frame of the task
        release_arrow_memory()  # what pyarrow's pool kept of reading and splitting it
        if uc.is_classification and (train_df[uc.label].nunique() < 2 or test_df[uc.label].nunique() < 2):
            raise task.TaskError(f"data version {data_version} has a single class in train or test; cannot train")
        name = task.model_name(args, ctx)
        versions = fingerprint.of_run(uc, params, data_version)  # what `changed` compares with the champion's

        with task.start_job_run(ctx, task.experiment(args), task.upstream("ingest", "mlflow_run_id", args.run_id)) as run:
            mlflow.set_tags({**task.run_tags(ctx), **versions})
            mlflow.log_params({f"train.{k}": v for k, v in tp.model_dump().items()})
            train_rows = len(train_df)
            mlflow.log_params({"split.test_fraction": params.split.test_fraction, "train_rows": train_rows, "test_rows": len(test_df)})
            # the train_* metrics estimate the gap on a sample drawn now: the fit consumes the training
            # rows (frees them before its transformers run), unless the sample is all of them
            seen = _sample(train_df, tp.train_metrics_sample, tp.random_state)
            started = time.perf_counter()
            model = fit(uc, tp, train_df, consume=seen is not train_df)
            del train_df
            mlflow.log_metric("fit_seconds", round(time.perf_counter() - started, 3))
            y, predicted = test_df[uc.label].to_numpy(), predict(uc, model, test_df)  # once: metrics and plots
            metrics = evaluate(uc, model, test_df, tp.threshold, predicted)
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
            mlflow.log_param("train_metrics_rows", len(seen))
            mlflow.log_metrics({f"train_{k}": v for k, v in evaluate(uc, model, seen, tp.threshold).items()
                                if k in uc.compared})

            values = [f"{uc.label}={v}" for v in (uc.label_values or ["0", "1"])]
            for fname, fig in plots.for_task(uc.task, y, predicted, tp.threshold, tuple(values[:2])):
                mlflow.log_figure(fig, f"plots/{fname}")
                plots.close(fig)
            fig, importance = plots.feature_importance(model, test_df, uc.feature_names, uc.label, uc.task,
                                                       tp.importance_sample, tp.random_state)
            mlflow.log_figure(fig, "plots/feature_importance.png")
            plots.close(fig)
            mlflow.log_dict(importance, "feature_importance.json")

            example = test_df[uc.feature_names].head(5)
            output = model.predict_proba(example) if uc.is_classification else model.predict(example)
            signature = infer_signature(example, output)
            info = mlflow.sklearn.log_model(
                sk_model=model,
                name="model",
                signature=signature,
                input_example=example,
                registered_model_name=name,
                pyfunc_predict_fn="predict_proba" if uc.is_classification else "predict",
                skops_trusted_types=TRUSTED_TYPES,
                pip_requirements=pip_requirements(),
                await_registration_for=60,
            )
            version = str(info.registered_model_version)
            client = mlflow.MlflowClient()
            shown = ", ".join(f"{m} {metrics[m]:.4f}" for m in uc.compared)
            description = (
                f"{uc.spec.description.rstrip('.') or uc.name} — {uc.task.replace('_', ' ')} "
                f"({getattr(tp, 'model_type', type(model).__name__)}) trained on data version {data_version} "
                f"({train_rows} rows; held-out {len(test_df)}): test {shown}. "
                f"Job run {ctx.run_id or 'manual'}, git {ctx.git_sha[:12]}, target {ctx.target}."
            )
            client.update_model_version(name, version, description=description)
            for key, value in {**task.run_tags(ctx), **versions, "training_run_id": run.info.run_id,
                               VALIDATION_TAG: "PENDING", **feature_table_tags(run.info.run_id)}.items():
                client.set_model_version_tag(name, version, key, value)
            mlflow.set_tag("registered_model_version", f"{name}/{version}")
        # validate_model and deploy_model judge this version on these rows: they reuse these scores and rows
        kept = held_out_scores.key(uc, params, name, version, run.info.run_id, data_version, test_df)
        held_out_scores.save(kept, predicted)
        held_out_scores.save_rows(uc, params, data_version, test_df, kept["rows_sha256"])

        uri = f"models:/{name}/{version}"
        task.publish("model_uri", uri)
        task.publish("model_name", name)
        task.publish("model_version", version)
        task.publish("training_run_id", run.info.run_id)
        print(f"train: registered {uri} — " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return 0

    return task.run_task("train", body)


if __name__ == "__main__":
    raise SystemExit(main())
