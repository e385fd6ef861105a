"""`conveyor bundle deploy/run` on a kubernetes env, against a real API server and controllers.

The env: storage in a bucket (S3 API on loopback), a real MLflow, and a real control plane
(etcd + kube-apiserver + kube-controller-manager). The CLI is run as a user runs it. With no
kubelet here, the test plays kubelet for the Job's pod (tests/kubelet.py): the pod the
controllers created is run as a local process and its phase reported back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bundles.cluster import label_value
from infra.kubernetes import feature_store
from tests.kube_cluster import control_plane, wait_for
from tests.kubelet import report, run_pod

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NS = "conveyor-dev"
IN_CLUSTER_MLFLOW = f"http://mlflow.{NS}.svc.cluster.local:5000"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with control_plane(tmp_path_factory.mktemp("control-plane")) as cp:
        yield cp


@pytest.fixture
def k8s_env(cluster, s3_outputs, project, tmp_path):
    """The env as `pulumi up` of the kubernetes platform leaves it, as far as bundles are concerned:
    the stack file, its outputs, the namespace and the per-persona Secrets."""
    bucket = s3_outputs.storage.root.removeprefix("s3://").split("/")[0]
    stack = {"config": {
        "conveyor:platform": "kubernetes",
        "conveyor:kubernetes": {
            "kubeconfig": str(cluster.kubeconfig),
            "storage": {"kind": "s3", "bucket": bucket, "prefix": "dev", "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
                        # as `pulumi config set --secret` leaves them: a deploy must not need the passphrase
                        "access_key_id": {"secure": "v1:AAAA"}, "secret_access_key": {"secure": "v1:BBBB"}},
        },
    }}
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "dev.json").write_text(s3_outputs.model_dump_json())
    api = cluster.api()
    api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for persona, cred in s3_outputs.credentials.items():
        sa = persona.replace("_", "-")
        in_cluster = s3_outputs.model_copy(update={"credentials": {persona: cred}, "tracking_uri": IN_CLUSTER_MLFLOW})
        for name, data in ((f"persona-{sa}", {"username": cred.username, "password": cred.password,
                                              "token": cred.token}),
                           (f"env-outputs-{sa}", {"outputs.json": in_cluster.model_dump_json(),
                                                  "dev.json": in_cluster.model_dump_json()})):
            api.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
                       "stringData": data})
    api.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials", "namespace": NS},
               "stringData": {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}})
    # the online feature store's password, which job pods read as PGPASSWORD (infra/kubernetes/feature_store.py)
    api.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": feature_store.SECRET, "namespace": NS},
               "stringData": {"PGPASSWORD": "feature-store-password"}})
    env = {**os.environ, "CONVEYOR_OUTPUTS_DIR": str(outputs_dir), "CONVEYOR_PROJECT_DIR": str(project)}
    return api, project, env


def conveyor(project: Path, env: dict, *args: str, user: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "conveyor.cli", "bundle", *args], cwd=project,
                          env={**env, "CONVEYOR_USER": user}, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def cronjobs(api, user: str) -> list[dict]:
    return api.list("batch/v1", "CronJob", NS, {"conveyor.io/deployment": label_value(f"demo.dev.{user}")})


def test_deploy_makes_schedules_cronjobs_and_keeps_them_in_sync(k8s_env, user):
    api, project, env = k8s_env
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    [cron] = cronjobs(api, user)
    spec = cron["spec"]
    assert spec["schedule"] == "*/5 * * * *" and spec["timeZone"] == "Etc/UTC"
    assert spec["suspend"] is True  # development mode pauses schedules
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "data-scientist"  # the job's run_as persona
    command = pod["containers"][0]["command"]
    assert command[-5:] == ["python", "-m", "bundles.incluster", f"demo.dev.{user}", "train_job"]

    # a CronJob deleted by hand is noticed and re-created
    api.delete("batch/v1", "CronJob", NS, cron["metadata"]["name"])
    proc = conveyor(project, env, "plan", "-t", "dev", user=user)
    assert "missing in the environment" in proc.stdout
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    assert len(cronjobs(api, user)) == 1

    # a job that loses its schedule loses its CronJob; destroy removes the rest
    jobs_yml = project / "resources" / "jobs.yml"
    jobs_yml.write_text(jobs_yml.read_text().replace('      schedule:\n        cron: "*/5 * * * *"\n', ""))
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    assert cronjobs(api, user) == []
    jobs_yml.write_text(jobs_yml.read_text().replace(
        "    train_job:\n      name: train\n",
        '    train_job:\n      name: train\n      schedule:\n        cron: "0 3 * * *"\n'))
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    assert [c["spec"]["schedule"] for c in cronjobs(api, user)] == ["0 3 * * *"]
    conveyor(project, env, "destroy", "-t", "dev", "--auto-approve", user=user)
    assert cronjobs(api, user) == []


def test_run_is_a_job_whose_pod_runs_the_deployed_code(k8s_env, cluster, user, tmp_path):
    api, project, env = k8s_env
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    markers = tmp_path / "markers"
    markers.mkdir()
    cli = subprocess.Popen([sys.executable, "-m", "conveyor.cli", "bundle", "run", "train_job", "-t", "dev",
                            "--params", "rows=7", "--timeout", "240"],
                           cwd=project, env={**env, "CONVEYOR_USER": user}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        selector = {"conveyor.io/deployment": label_value(f"demo.dev.{user}")}
        [pod] = wait_for(lambda: api.list("v1", "Pod", NS, selector), timeout=120, what="the Job's pod")
        assert pod["spec"]["serviceAccountName"] == "data-scientist"
        assert pod["spec"]["automountServiceAccountToken"] is False
        # the pod, run here (a clean machine: its own work dir, nothing of the deployer's)
        done = run_pod(api, pod, tmp_path / "pod", services={IN_CLUSTER_MLFLOW: s3_tracking(env)},
                       extra_env={"DEMO_MARKER_DIR": str(markers),
                                  "AWS_ENDPOINT_URL": env["AWS_ENDPOINT_URL"]})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "success" in done.stdout
        report(cluster, pod, done.returncode)
        out, err = cli.communicate(timeout=180)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, out + err
    assert "started Job conveyor-dev/" in out and "success" in out
    prepare = json.loads((markers / "train_job.prepare.json").read_text())
    assert prepare["args"]["rows"] == 7  # --params reached the pod
    train = json.loads((markers / "train_job.train.json").read_text())
    assert train["persona"] == "data_scientist" and train["user"] == "data_scientist-user"
    assert train["module_file"].startswith(str(tmp_path / "pod"))  # code fetched from the bucket in the pod
    assert train["job_spec_name"] == f"dev_{user}_train"


def test_run_that_never_finishes_times_out_with_one_clear_line(k8s_env, user):
    api, project, env = k8s_env
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    started = time.monotonic()
    proc = conveyor(project, env, "run", "train_job", "-t", "dev", "--timeout", "3", user=user, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "timeout" in proc.stderr and f"kubectl -n {NS} logs job/" in proc.stderr
    assert time.monotonic() - started < 120
    bad = conveyor(project, env, "run", "no_such_job", "-t", "dev", user=user, check=False)
    assert bad.returncode == 1 and "not deployed" in bad.stderr and "Traceback" not in bad.stderr


def s3_tracking(env: dict) -> str:
    outputs = json.loads((Path(env["CONVEYOR_OUTPUTS_DIR"]) / "dev.json").read_text())
    return outputs["tracking_uri"]


def test_two_bundles_with_the_same_job_name_keep_their_own_cronjobs(k8s_env, user, tmp_path):
    api, project, env = k8s_env
    other = tmp_path / "other"
    import shutil

    shutil.copytree(project, other)
    (other / "bundle.yml").write_text((other / "bundle.yml").read_text().replace("name: demo", "name: other", 1))
    ml = other / "resources" / "ml.yml"  # its own MLflow names (those are owned per deployment too)
    ml.write_text(ml.read_text().replace("name: demo-", "name: other-"))
    conveyor(project, env, "deploy", "-t", "dev", user=user)
    conveyor(other, {**env, "CONVEYOR_PROJECT_DIR": str(other)}, "deploy", "-t", "dev", user=user)
    mine = cronjobs(api, user)
    theirs = api.list("batch/v1", "CronJob", NS, {"conveyor.io/deployment": label_value(f"other.dev.{user}")})
    assert len(mine) == 1 and len(theirs) == 1  # same job (`dev_<user>_train`), two CronJobs
    assert mine[0]["metadata"]["name"] != theirs[0]["metadata"]["name"]
    assert theirs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-2] == \
        f"other.dev.{user}"
    conveyor(other, {**env, "CONVEYOR_PROJECT_DIR": str(other)}, "destroy", "-t", "dev", "--auto-approve", user=user)
    assert [c["metadata"]["uid"] for c in cronjobs(api, user)] == [c["metadata"]["uid"] for c in mine]
    plan = conveyor(project, env, "plan", "-t", "dev", user=user)
    assert "missing" not in plan.stdout
