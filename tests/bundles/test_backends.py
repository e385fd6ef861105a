"""Job backends: one per platform, chosen once from the env's `platform` output (bundles/backends/)."""

from __future__ import annotations

import pytest

from bundles.backends import BACKENDS, JobBackend, JobTarget, backend_for
from bundles.backends.kubernetes import KubernetesJobs
from bundles.backends.local import LocalJobs
from bundles.engine import Engine
from bundles.errors import BundleError
from bundles.loader import load_bundle
from tests.bundles import mini

JOB = """\
resources:
  jobs:
    nightly:
      tasks:
        main:
          python: {module: mini_tasks.main}
      schedule: {cron: "0 3 * * *"}
"""


class RecordingJobs(JobBackend):
    """A platform that remembers what deploy asked of it."""

    platform = "recording"
    calls: list[tuple] = []

    def sync(self, key, spec):
        self.calls.append(("sync", key, spec["schedule"]["cron"]))

    def remove(self, key):
        self.calls.append(("remove", key))

    def has(self, key, spec):
        return True

    def active_runs(self, key):
        return []

    def start(self, job, params=None, only=None, reporter=None):
        raise NotImplementedError


@pytest.fixture
def bundle(tmp_path):
    bundle, diags = load_bundle(mini.project(tmp_path / "project", JOB), "prod")
    assert bundle is not None, [d.render() for d in diags]
    return bundle


def test_the_platform_output_picks_the_backend(bundle, tmp_path):
    local = backend_for(JobTarget.of(bundle, mini.outputs(tmp_path / "a")))
    cluster = backend_for(JobTarget.of(bundle, mini.outputs(tmp_path / "b", platform="kubernetes")))
    assert type(local) is LocalJobs and type(cluster) is KubernetesJobs
    assert cluster._cluster is None  # no cluster connection until a job needs one
    with pytest.raises(BundleError, match="runs on platform 'mainframe', which has no job backend "
                                          "\\(known: kubernetes, local\\)"):
        backend_for(JobTarget.of(bundle, mini.outputs(tmp_path / "c", platform="mainframe")))


def test_deploy_and_destroy_drive_the_registered_backend(bundle, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, RecordingJobs.platform, RecordingJobs)
    RecordingJobs.calls = []
    engine = Engine(bundle, mini.outputs(tmp_path / "env", platform="recording"))
    assert type(engine.jobs) is RecordingJobs
    engine.deploy()
    assert RecordingJobs.calls == [("sync", "nightly", "0 3 * * *")]
    engine.destroy()
    assert RecordingJobs.calls[-1] == ("remove", "nightly")


def test_storage_only_engine_ignores_the_platform(bundle, tmp_path):
    engine = Engine(bundle, mini.outputs(tmp_path / "env", platform="kubernetes"), jobs=None)
    assert type(engine.jobs) is LocalJobs  # registers jobs in env storage, touches no cluster
    engine.deploy()
    assert engine.store.read_object("jobs", "nightly")["spec"]["schedule"]["cron"] == "0 3 * * *"


def test_local_backend_runs_the_job_here(bundle, tmp_path):
    outputs = mini.outputs(tmp_path / "env")
    Engine(bundle, outputs).deploy()
    backend = backend_for(JobTarget.of(bundle, outputs))
    run = backend.start("nightly")
    result = run.wait()
    assert run.finished and result.ok and result.job == "nightly", result
    assert backend.active_runs("nightly") == []


def test_cluster_run_of_some_tasks_is_refused_before_touching_the_cluster(bundle, tmp_path):
    backend = backend_for(JobTarget.of(bundle, mini.outputs(tmp_path / "env", platform="kubernetes")))
    with pytest.raises(BundleError, match="--only is not supported on a kubernetes env yet"):
        backend.start("nightly", only=["main"])
    assert backend._cluster is None
