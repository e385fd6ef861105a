"""Task `validate_model`: gate a newly registered model version before it may compete.

Checks: metric gates on held-out data (`params.yaml: model_validation.min_<metric>` /
`max_<metric>`); no regression against the current `champion` (scored on the same rows) on
the use case's compared metrics beyond `max_relative_regression`; better than the champion on
the primary metric by `deployment.min_improvement` (`beats_champion`: a tie is refused); per-slice gates
(`min_slice_<metric>`, each value of usecase.yml `validation.slice_column` with enough
evidence); compliance (signature, description, usecase.yml `validation.required_tags`). The
result is recorded on the version — tag `model_validation_status` PENDING → PASSED/FAILED,
`model_validation.json` in its run, a line in its description. PASSED → alias `challenger`;
FAILED → exit 1 and no alias moves. The candidate's held-out scores are `train`'s when they
provably belong to this version and these rows (`ml.training.held_out_scores`), else computed
here; the champion's are kept the same way for `deploy_model`.
"""

from __future__ import annotations

import datetime as dt

from core import runtime
from ml import task
from ml.registry import CHALLENGER, CHAMPION, VALIDATION_TAG, alias_version, parse_uri
from ml.training import held_out_scores
from ml.training.estimator import enough_evidence, evaluate, predict, slice_scores
from ml.usecase import UseCase, load_use_case
from ml.usecase.metrics import beats, improvement, passes, relative_change


def _gate_detail(gate: str, value: float, threshold: float) -> str:
    return f"{gate[4:]} {value:.4f} {'>=' if gate.startswith('min_') else '<='} {threshold}"


def run_checks(params, candidate, champion, data, mv, signature_present: bool,
               usecase: UseCase | None = None, *, predicted=None, champion_predicted=None) -> tuple[list[dict], dict]:
    """All checks as `{check, passed, detail}` rows plus the metrics they used.

    `champion`: (version, model) or None. `predicted` / `champion_predicted`: the candidate's /
    champion's `predict` on `data` when the caller has them (the model may then be None)."""
    uc = usecase or load_use_case(params.use_case)
    mp, threshold = params.model_validation, params.train.threshold
    predicted = predict(uc, candidate, data) if predicted is None else predicted  # once: metrics and slices
    metrics = evaluate(uc, candidate, data, threshold, predicted)
    checks: list[dict] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    y = data[uc.label].to_numpy()
    if not enough_evidence(uc, y, mp.min_held_out_positives):
        # A handful of positive cases (e.g. a CI integration run on a data subset) makes the
        # metrics noise: say so instead of passing or failing on luck. Compliance is still judged.
        what = f"only {int(y.sum())} positive cases" if uc.is_classification else f"only {len(y)} rows"
        why = f"not judged: {what} in held-out data (min_held_out_positives={mp.min_held_out_positives})"
        check("metric_floors", True, why)
        check("no_regression", True, why)
        return _compliance(uc, checks, check, mv, signature_present), {"candidate": metrics, "champion": None, "slices": {},
                                                               "judged": False}
    for gate, floor in mp.gates().items():
        value = metrics[gate[4:]]
        check(gate, passes(uc.task, gate, value, floor), _gate_detail(gate, value, floor))
    champion_metrics = None
    if champion is not None:
        champion_metrics = evaluate(uc, champion[1], data, threshold, champion_predicted)
        for m in uc.compared:
            base = champion_metrics[m]
            change = relative_change(uc.task, m, metrics[m], base)
            check(f"no_regression_{m}", change >= -mp.max_relative_regression,
                  f"{m} {metrics[m]:.4f} vs champion v{champion[0]} {base:.4f}: {change:+.2%} (allowed -{mp.max_relative_regression:.0%})")
        primary, margin = params.deployment.primary_metric or uc.metrics.primary, params.deployment.min_improvement
        new, base = metrics[primary], champion_metrics[primary]
        check("beats_champion", beats(uc.task, primary, new, base, margin),
              f"{primary} {new:.4f} vs champion v{champion[0]} {base:.4f}: {improvement(uc.task, primary, new, base):+.4f} "
              f"(needs > 0 and >= deployment.min_improvement {margin}; a tie is no improvement)")
    else:
        check("no_regression", True, "no champion yet: nothing to regress against")
    column = uc.spec.validation.slice_column
    slices = slice_scores(uc, candidate, data, column, threshold, mp.min_slice_positives, predicted) if column else {}
    for value, s in sorted(slices.items()):
        for gate, floor in mp.gates(slices=True).items():
            metric = gate[4:]
            if metric in s:
                evidence = f"{s['rows']} rows" + (f", {s['positives']} positive" if "positives" in s else "")
                check(f"slice:{column}={value}", passes(uc.task, gate, s[metric], floor),
                      f"{_gate_detail(gate, s[metric], floor)} ({evidence})")
    return _compliance(uc, checks, check, mv, signature_present), {"candidate": metrics, "champion": champion_metrics,
                                                           "slices": slices, "judged": True}


def _compliance(uc: UseCase, checks: list[dict], check, mv, signature_present: bool) -> list[dict]:
    check("compliance_signature", signature_present, "model logged with an input/output signature")
    check("compliance_description", bool((mv.description or "").strip()), "model version has a description")
    required = uc.spec.validation.required_tags
    missing = [t for t in required if not mv.tags.get(t)]
    check("compliance_tags", not missing, f"required tags {required}" + (f"; missing {missing}" if missing else ""))
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.validation.validate_model", __doc__)
    ap.add_argument("--model-uri", default=None, help="models:/<name>/<version> (default: from the train task)")
    args = ap.parse_args(argv)

    def body() -> int:
        import mlflow
        from mlflow.models import get_model_info

        ctx = runtime.context()
        uc = task.use_case_from(args)
        params = task.params_from(args)
        uri = task.upstream("train", "model_uri", args.model_uri)
        if not uri:
            raise task.TaskError("no model to validate: run `train` first or pass --model-uri")
        name, version = parse_uri(uri)
        client = mlflow.MlflowClient()
        mv = client.get_model_version(name, version)
        client.set_model_version_tag(name, version, VALIDATION_TAG, "PENDING")
        data_version = mv.tags.get("data_version")
        if not data_version:
            raise task.TaskError(f"{uri} has no data_version tag; cannot find its held-out data")
        # train's held-out rows when they are this data version's, else gold read and split; digest:
        # their rows_digest, once for the candidate and the champion
        data, digest = held_out_scores.held_out_rows(ctx, params, data_version, uc)

        def scores(of):  # this job run's earlier scores of that version on these rows, else scored here (and kept)
            return held_out_scores.of_version(uc, params, of, data_version, data, digest)

        predicted, candidate = scores(mv)
        champ_mv = alias_version(client, name, CHAMPION)
        champion, champion_predicted = None, None
        if champ_mv is not None and champ_mv.version != version:
            champion_predicted, champion_model = scores(champ_mv)
            champion = (champ_mv.version, champion_model)
        signature_present = get_model_info(uri).signature is not None
        checks, metrics = run_checks(params, candidate, champion, data, mv, signature_present, uc,
                                     predicted=predicted, champion_predicted=champion_predicted)
        failed = [c for c in checks if not c["passed"]]
        status = "FAILED" if failed else "PASSED"
        report = {"model": uri, "status": status, "data_version": data_version, "held_out_rows": len(data),
                  "checks": checks, "metrics": metrics, "config": {**params.model_validation.model_dump(), **uc.spec.validation.model_dump()},
                  "validated_at": dt.datetime.now(dt.UTC).isoformat()}

        with mlflow.start_run(run_id=mv.run_id):
            mlflow.log_dict(report, "model_validation.json")
            mlflow.log_metrics({f"validation_{k}": v for k, v in metrics["candidate"].items()})
            mlflow.log_metric("validation_failed_checks", len(failed))
            mlflow.set_tag(VALIDATION_TAG, status)
            mlflow.set_tag("model_validation_evidence", "sufficient" if metrics["judged"] else "insufficient")
        client.set_model_version_tag(name, version, VALIDATION_TAG, status)
        summary = f"Validation {status}: {len(checks) - len(failed)}/{len(checks)} checks passed"
        if failed:
            summary += " (failed: " + ", ".join(c["check"] for c in failed) + ")"
        client.update_model_version(name, version, description=f"{(mv.description or '').strip()}\n{summary}.".strip())
        task.publish("validation_status", status)
        for c in checks:
            print(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['check']}: {c['detail']}")
        if failed:
            raise task.CheckFailed(f"{uri} refused — " + "; ".join(f"{c['check']}: {c['detail']}" for c in failed)
                                   + f". Aliases unchanged (champion: {'v' + champ_mv.version if champ_mv else 'none'}).")
        client.set_registered_model_alias(name, CHALLENGER, version)
        print(f"validate_model: {uri} PASSED; alias {CHALLENGER} -> v{version}")
        return 0

    return task.run_task("validate_model", body)


if __name__ == "__main__":
    raise SystemExit(main())
