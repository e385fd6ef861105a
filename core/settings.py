"""Every `CONVEYOR_*` environment variable, declared once with its type and meaning.

Read a setting with `settings.ENV.get()`; hand one to a child process with
`{settings.ENV.name: value}`. No other module reads these variables, so this file is the
reference of what a process can be told through its environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


def _flag(raw: str) -> bool:
    return raw.strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: `get()` is its typed value, `default` when unset or empty."""

    name: str
    parse: Callable[[str], T]
    default: T | None
    doc: str

    def get(self) -> T | None:
        raw = os.environ.get(self.name)
        return self.default if raw in (None, "") else self.parse(raw)

    def is_set(self) -> bool:
        return os.environ.get(self.name) not in (None, "")


def _choice(raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
    return raw


def _declare(name: str, parse: Callable[[str], T], default: T | None, doc: str) -> Setting[T]:
    return Setting(f"CONVEYOR_{name}", parse, default, doc)


# --- where things are ----------------------------------------------------------------------
PROJECT_DIR = _declare("PROJECT_DIR", Path, None, "the project root (default: nearest parent holding Pulumi.yaml)")
HOME = _declare("HOME", Path, None, "local state: Pulumi state, env storage, process state (default: <project>/.conveyor)")
TOOLS_DIR = _declare("TOOLS_DIR", Path, None, "cached toolchain builds (default: ~/.cache/conveyor/tools)")
TEMPLATES_DIR = _declare("TEMPLATES_DIR", Path, None,
                         "git repositories of the `conveyor init` templates, read by `copier update` (default: ~/.cache/conveyor/templates)")
PULUMI_BIN = _declare("PULUMI_BIN", str, None, "a pulumi CLI to use instead of the cached build")
OUTPUTS_DIR = _declare("OUTPUTS_DIR", Path, None, "a folder of <stack>.json environment outputs (CI runners, job pods)")
STATE_DIR = _declare("STATE_DIR", Path, None, "an env's state volume; object-storage paths map under it")
STORAGE_URI = _declare("STORAGE_URI", str, None, "the env's storage root URI (serving process)")

# --- a task's runtime contract (set by the bundle runner; see core.runtime) -------------------
ENV = _declare("ENV", str, None, "the environment a process belongs to: dev, staging, prod")
ENV_OUTPUTS = _declare("ENV_OUTPUTS", Path, None, "JSON file of the env's EnvironmentOutputs (credentials of one principal)")
PERSONA = _declare("PERSONA", str, "ci", "the principal a task runs as")
BUNDLE_TARGET = _declare("BUNDLE_TARGET", str, None, "the bundle target of the running job")
DEPLOYMENT = _declare("DEPLOYMENT", str, None, "the bundle deployment a job run belongs to")
JOB = _declare("JOB", str, "", "the job key of the running job")
RUN_ID = _declare("RUN_ID", str, "", "the job run id")
TASK = _declare("TASK", str, "", "the task key within the job")
GIT_SHA = _declare("GIT_SHA", str, "unknown", "git sha of the deployed code")
TASK_VALUES_DIR = _declare("TASK_VALUES_DIR", Path, None, "one <task>.json of published values per task of this run")
MEDALLION_SERVER = _declare("MEDALLION_SERVER", str, None,
                            "unix socket of the ingest task that runs the medallion stages of its dvc repro (ml.data.stage_server)")
USE_CASE = _declare("USE_CASE", str, None, "the use case an ML task works on without --use-case (default: usecases/defaults.yml, else the only one)")
TRIGGER = _declare("TRIGGER", str, "cluster", "what started a cluster run (manual, schedule, …)")
WARM_START = _declare("WARM_START", _flag, True,
                       "start job tasks from a pre-imported fork server (bundles.warmstart); 0 starts each as a fresh python")
BATCH_SCORE_THREADS = _declare("BATCH_SCORE_THREADS", int, None,
                               "threads batch scoring walks the trees with (default: the CPUs it may use ÷ OpenMP threads)")

# --- identity and diagnostics --------------------------------------------------------------
USER = _declare("USER", str, None, "the person deploying (dev-mode name prefix; default: the OS user)")
GIT_BRANCH = _declare("GIT_BRANCH", str, None, "the branch CI builds (when git cannot tell)")

# --- serving process ---------------------------------------------------------------------------
ENDPOINT_DIR = _declare("ENDPOINT_DIR", Path, None, "the endpoint config directory the serving process watches")
INFERENCE_TABLE = _declare("INFERENCE_TABLE", Path, None, "where the endpoint writes its inference table")
SERVING_TOKENS_FILE = _declare("SERVING_TOKENS_FILE", Path, None, "bearer tokens the endpoint accepts (re-read on change)")
BATCH_MAX_LATENCY_MS = _declare("BATCH_MAX_LATENCY_MS", int, 1000, "the adaptive batcher's latency budget")
SERVING_USE_CASE = _declare("SERVING_USE_CASE", str, "fraud", "the use case of the default endpoint when its config dir binds none")
ONLINE_STORE_POLICY = _declare("ONLINE_STORE_POLICY", lambda v: _choice(v, ("defaults", "reject")), "defaults",
                               "an unreadable online feature store: serve the declared defaults (counted), or reject with 503")
ONLINE_STORE_ROOT = _declare("ONLINE_STORE_ROOT", Path, None, "where the serving process finds feature-store/online/ (default: the env's storage root)")
ONLINE_STORE_URL = _declare("ONLINE_STORE_URL", str, None,
                            "a networked online feature store (refresh job and serving), e.g. postgresql+psycopg://user@host/db "
                            "with no password (libpq reads PGPASSWORD); unset: SQLite files under the env's storage")

# --- tracking server and platform bootstrap ----------------------------------------------------
AUTH_DB_URI = _declare("AUTH_DB_URI", str, None, "SQLAlchemy URI of MLflow's basic-auth user database")
MLFLOW_USERS_FILE = _declare("MLFLOW_USERS_FILE", Path, None, "JSON {username: {password, admin}} to bootstrap")
MLFLOW_ROLES_FILE = _declare("MLFLOW_ROLES_FILE", Path, None, "JSON of MLflow roles per persona")
CREATE_BUCKET = _declare("CREATE_BUCKET", str, None, "bucket to create (in-cluster MinIO only)")
RENDER_ONLY = _declare("RENDER_ONLY", _flag, False, "render Kubernetes objects without contacting a cluster")
