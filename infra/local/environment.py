"""The `local` platform: one environment as supervised processes on this machine.

Layout per env (all under `.conveyor/envs/<env>/` unless `conveyor:storage.root`):
  storage/   DVC remote, MLflow DB + artifacts, model/Bento store, tables, bundle state
  run/       supervisord config, sockets, process logs, generated config files

Both trees are owner-only (dirs 0700, files 0600), and so is what the servers add to them.
MLflow's database is sqlite files in `storage/tracking/`, or with `conveyor:tracking.database:
postgresql` a PostgreSQL server of the env (`infra.local.postgres`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pulumi

from core import settings
from core.paths import project_dir, state_dir
from core.contract import STORAGE_SUBPATHS, storage_layout
from infra.environment import Environment, EnvironmentArgs, credentials_output
from infra.config import ConfigError, StackConfig
from infra.local import postgres
from infra.local.resources import DirectoryTree, LocalFile, SupervisedProgram
from infra.local.users import MlflowUsers

# Every contract location, plus the tracking server's database (local platform only).
STORAGE_SUBDIRS = [*STORAGE_SUBPATHS.values(), "tracking"]
SERVING_LAUNCHER = "ml.serving.launcher"
# What the launcher process imports: a change restarts it (the code it serves ships with bundle deploy).
LAUNCHER_SOURCES = ("ml/serving/launcher.py", "ml/serving/launch_proxy.py", "core")
AUTH_PLUGIN = "infra.components.mlflow_auth:authenticate"


def _bin(name: str) -> str:
    """Executables of the environment Pulumi itself runs in (the project venv)."""
    return str(Path(sys.executable).with_name(name))


def code_digest(*sources: str) -> str:
    """Digest of the Python sources (files or packages) a process imports: `pulumi up`
    restarts the process when they change, and only then."""
    digest = hashlib.sha256()
    for source in sources:
        root = project_dir() / source
        for path in sorted(root.rglob("*.py") if root.is_dir() else [root]):
            digest.update(str(path.relative_to(project_dir())).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def env_dir(env: str) -> Path:
    return state_dir() / "envs" / env


def storage_root(cfg: StackConfig) -> Path:
    return Path(cfg.storage.root).expanduser().resolve() if cfg.storage.root else env_dir(cfg.env) / "storage"


def postgres_data_dir(cfg: StackConfig) -> Path:
    return storage_root(cfg) / "tracking" / "postgres"


class LocalStorage(pulumi.ComponentResource):
    """A directory tree per env: the DVC remote, artifacts, model store and tables."""

    def __init__(self, name: str, root: Path, retain: bool, opts: pulumi.ResourceOptions | None = None):
        super().__init__("conveyor:local:Storage", name, None, opts)
        self.tree = DirectoryTree(f"{name}-tree", str(root), STORAGE_SUBDIRS, retain,
                                  opts=pulumi.ResourceOptions(parent=self))
        self.root = root
        self.uri = root.as_uri()
        self.register_outputs({"storage_uri": self.uri})


class LocalTracking(pulumi.ComponentResource):
    """`mlflow server` with basic-auth and persona roles; artifacts proxied to storage.

    Its tracking store and user store are sqlite files in the env's storage, or the
    databases of `database` (a `LocalPostgres`) when given."""

    def __init__(self, name: str, args: EnvironmentArgs, storage: LocalStorage, run_dir: Path,
                 database: postgres.LocalPostgres | None = None, opts: pulumi.ResourceOptions | None = None):
        super().__init__("conveyor:local:Tracking", name, None, opts)
        cfg = args.config
        ready = [storage.tree, *([database.ready] if database else [])]
        child = pulumi.ResourceOptions(parent=self, depends_on=ready)
        roles = {i.username: i.role for i in args.personas.values()}
        roles[args.admin.username] = "write"
        roles[args.serving.username] = "read"
        roles_file = LocalFile(f"{name}-roles", str(run_dir / "mlflow-roles.json"),
                               json.dumps(roles, indent=2, sort_keys=True), opts=child)
        auth_uri = database.auth_uri if database else f"sqlite:///{storage.root / 'tracking' / 'auth.db'}"
        auth_ini = pulumi.Output.all(args.admin.password, auth_uri).apply(lambda a: "\n".join([
            "[mlflow]",
            f"default_permission = {cfg.access.default_permission}",
            f"database_uri = {a[1]}",
            f"admin_username = {args.admin.username}",
            f"admin_password = {a[0]}",
            f"authorization_function = {AUTH_PLUGIN}",
            # Password hashing is deliberately slow; remember a verified login for a minute.
            "auth_cache_ttl_seconds = 60",
            "",
        ]))
        auth_file = LocalFile(f"{name}-auth-config", str(run_dir / "mlflow-auth.ini"), auth_ini, opts=child)
        self.uri = f"http://127.0.0.1:{cfg.ports.tracking}"
        # A sqlite path is no secret; a database URI with a password stays out of argv (ps shows argv).
        sqlite_store = [] if database else ["--backend-store-uri", f"sqlite:///{storage.root / 'tracking' / 'mlflow.db'}"]
        command = [
            _bin("mlflow"), "server", "--app-name", "basic-auth", *sqlite_store,
            "--artifacts-destination", str(storage.root / "mlflow-artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(cfg.ports.tracking), "--workers", "1",
        ]
        backend_uri = database.backend_uri if database else None
        environment = pulumi.Output.all(args.flask_secret, backend_uri).apply(lambda a: {
            "MLFLOW_AUTH_CONFIG_PATH": str(run_dir / "mlflow-auth.ini"),
            settings.MLFLOW_ROLES_FILE.name: str(run_dir / "mlflow-roles.json"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": a[0],
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner processes: jobs are ours
            "PYTHONPATH": str(project_dir()),
            **({"MLFLOW_BACKEND_STORE_URI": a[1]} if a[1] else {}),
        })
        self.server = SupervisedProgram(
            f"{name}-server", env=cfg.env, run_dir=str(run_dir), program="tracking", command=command,
            directory=str(run_dir), environment=environment, health_url=f"{self.uri}/health",
            # auth.ini is read at start (roles are re-read live): a change restarts the server,
            # and so does a change of the auth plugin or the settings it reads.
            triggers=auth_ini.apply(lambda text: hashlib.sha256(
                (text + code_digest("infra/components/mlflow_auth.py", "core/settings.py")).encode()).hexdigest()),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[roles_file, auth_file, *ready]),
        )
        users = {i.username: i.password for i in [*args.personas.values(), args.serving]}
        self.users = MlflowUsers(f"{name}-users", tracking_uri=self.uri, admin_username=args.admin.username,
                                 admin_password=args.admin.password, users=users,
                                 opts=pulumi.ResourceOptions(parent=self, depends_on=[self.server]))
        self.register_outputs({"tracking_uri": self.uri})


class LocalServing(pulumi.ComponentResource):
    """The env's endpoint process: the launcher (`ml.serving.launcher`) on the serving port.

    Pulumi owns the process; the code it serves is the bundle's (`conveyor bundle deploy` ships
    it, the launcher rolls onto it with no failed request), and the models come from the
    endpoint configs and the env's BentoML model store (`storage.bentos`)."""

    def __init__(self, name: str, args: EnvironmentArgs, storage: LocalStorage, tracking: LocalTracking,
                 run_dir: Path, opts: pulumi.ResourceOptions | None = None):
        super().__init__("conveyor:local:Serving", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self, depends_on=[storage.tree])
        digests = pulumi.Output.all(*[i.token for i in args.personas.values()]).apply(
            lambda tokens: json.dumps(sorted(hashlib.sha256(t.encode()).hexdigest() for t in tokens), indent=2)
        )
        tokens_file = LocalFile(f"{name}-tokens", str(run_dir / "serving-tokens.json"), digests, opts=child)
        self.url = f"http://127.0.0.1:{cfg.ports.serving}"
        layout = storage_layout(storage.uri)
        environment = args.serving.password.apply(lambda pw: {
            settings.ENV.name: cfg.env,
            settings.ENDPOINT_DIR.name: str(storage.root / "endpoint"),
            settings.INFERENCE_TABLE.name: str(storage.root / "tables" / "inference"),
            settings.SERVING_TOKENS_FILE.name: str(run_dir / "serving-tokens.json"),
            settings.STORAGE_URI.name: layout.root,
            "BENTOML_HOME": str(storage.root / "bentos"),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_TRACKING_URI": tracking.uri,
            "MLFLOW_TRACKING_USERNAME": args.serving.username,
            "MLFLOW_TRACKING_PASSWORD": pw,
            "PYTHONPATH": str(project_dir()),
        })
        command = [sys.executable, "-m", SERVING_LAUNCHER, "--host", "127.0.0.1",
                   "--port", str(cfg.ports.serving), "--state-dir", str(run_dir / "serving")]
        self.server = SupervisedProgram(
            f"{name}-server", env=cfg.env, run_dir=str(run_dir), program="serving", command=command,
            directory=str(project_dir()), environment=environment, health_url=f"{self.url}/livez",
            triggers=digests.apply(
                lambda d: hashlib.sha256((d + code_digest(*LAUNCHER_SOURCES)).encode()).hexdigest()),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[tokens_file, tracking.users]),
        )
        self.register_outputs({"serving_url": self.url})


class LocalJobs(pulumi.ComponentResource):
    """The env's scheduler: starts deployed bundle jobs on their cron."""

    def __init__(self, name: str, args: EnvironmentArgs, outputs_file: LocalFile, run_dir: Path,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("conveyor:local:Jobs", name, None, opts)
        cfg = args.config
        environment = {
            settings.ENV.name: cfg.env,
            settings.ENV_OUTPUTS.name: str(run_dir / "outputs.json"),
            settings.PROJECT_DIR.name: str(project_dir()),
            settings.HOME.name: str(state_dir()),
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(project_dir()),
        }
        self.scheduler = SupervisedProgram(
            f"{name}-scheduler", env=cfg.env, run_dir=str(run_dir), program="scheduler",
            command=[sys.executable, "-m", "bundles.scheduler", "--env", cfg.env],
            directory=str(project_dir()), environment=environment, startsecs=2,
            triggers=code_digest("bundles", "core", "conveyor"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[outputs_file]),
        )
        self.register_outputs({})


class LocalEnvironment(Environment):
    """Storage + Tracking + Access + Serving + Jobs, each env under its own supervisord."""

    platform = "local"

    @classmethod
    def preflight(cls, cfg: StackConfig) -> None:
        if cfg.tracking.database == "postgresql":
            try:
                postgres.server_bin_dir(data_dir=postgres_data_dir(cfg))
            except ConfigError as exc:
                raise pulumi.RunError(str(exc)) from None

    def __init__(self, name: str, args: EnvironmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("conveyor:local:Environment", name, None, opts)
        cfg = args.config
        self.env_name = cfg.env
        base = env_dir(cfg.env)
        run_dir = base / "run"
        root = storage_root(cfg)
        child = pulumi.ResourceOptions(parent=self)
        run_tree = DirectoryTree(f"{name}-run", str(run_dir), ["logs", "programs"], False, opts=child)
        storage = LocalStorage(f"{name}-storage", root, cfg.storage.retain_on_destroy, opts=child)
        after_run = pulumi.ResourceOptions(parent=self, depends_on=[run_tree])
        database = None
        if cfg.tracking.database == "postgresql":
            database = postgres.LocalPostgres(
                f"{name}-postgres", env=cfg.env, port=cfg.tracking.port, data_dir=postgres_data_dir(cfg),
                run_dir=run_dir, opts=pulumi.ResourceOptions(parent=self, depends_on=[run_tree, storage.tree]))
        tracking = LocalTracking(f"{name}-tracking", args, storage, run_dir, database, opts=after_run)
        serving = LocalServing(f"{name}-serving", args, storage, tracking, run_dir, opts=after_run)

        # URLs resolve only once their servers (and users) are up, so consumers never race them.
        tracking_uri = tracking.users.id.apply(lambda _: tracking.uri)
        serving_url = serving.server.id.apply(lambda _: serving.url)
        storage_paths = storage_layout(storage.uri).model_dump()
        credentials = credentials_output(args.personas)
        # The same outputs, for processes of this env that must not call Pulumi (the scheduler).
        document = pulumi.Output.all(tracking_uri=tracking_uri, serving_url=serving_url,
                                     storage=storage_paths, credentials=credentials).apply(
            lambda o: json.dumps({"env": cfg.env, "platform": self.platform, "storage_uri": storage.uri, **o},
                                 indent=2))
        outputs_file = LocalFile(f"{name}-outputs", str(run_dir / "outputs.json"), document, opts=after_run)
        LocalJobs(f"{name}-jobs", args, outputs_file, run_dir, opts=after_run)

        self.publish(tracking_uri=tracking_uri, serving_url=serving_url, storage_uri=storage.uri,
                     storage=storage_paths, credentials=credentials)
