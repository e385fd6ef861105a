"""The online feature store of a kubernetes env: a PostgreSQL database its serving pods and job
pods share (SQLite files need one file system, which serving replicas on several nodes and job
pods do not have). Pulumi-free: the serving Deployment (Pulumi) and bundle job pods
(`infra.kubernetes.manifests`, outside Pulumi) take the same env vars from here.

`conveyor:kubernetes.feature_store` chooses it:

    online: postgresql        # (default) or sqlite: files on the serving state volume, one replica
    database: feature_store   # on the env's PostgreSQL server (the one MLflow uses)
    user: features            # its own login role: no access to MLflow's databases
    password: <secret>        # external postgres only (in-cluster: generated)

In-cluster, the PostgreSQL StatefulSet creates the role and database on first start
(`init_script`); with `postgres.kind: external` both must exist. Pods get the SQLAlchemy URL
without a password as CONVEYOR_ONLINE_STORE_URL and the password as PGPASSWORD from Secret
`feature-store`, which libpq reads: the password is never in a URL, a manifest or the stack outputs.
"""

from __future__ import annotations

from urllib.parse import quote

from infra.kubernetes import pods
from infra.kubernetes.config import KubernetesConfig

SECRET = "feature-store"  # key PGPASSWORD: the `user`'s password
PASSWORD_KEY = "PGPASSWORD"
PG_PORT = 5432
IN_CLUSTER_HOST = "postgres"  # the StatefulSet's Service, in the env's namespace


def enabled(cfg: KubernetesConfig) -> bool:
    return cfg.feature_store.online == "postgresql"


def config_problem(cfg: KubernetesConfig) -> str | None:
    """What stops the store from being configured (checked before anything is created), or None."""
    if enabled(cfg) and cfg.postgres.kind == "external" and cfg.feature_store.password is None:
        fs = cfg.feature_store
        return ("conveyor:kubernetes.feature_store.password: required with postgres.kind external (the role "
                f"{fs.user!r} and database {fs.database!r} must exist there): pulumi config set --secret --path "
                "conveyor:kubernetes.feature_store.password <password>, or set feature_store.online: sqlite")
    return None


def online_store_url(cfg: KubernetesConfig) -> str | None:
    """The SQLAlchemy URL of the env's online store (no password), or None for SQLite files."""
    if not enabled(cfg):
        return None
    fs = cfg.feature_store
    if cfg.postgres.kind == "statefulset":
        host, port, query = IN_CLUSTER_HOST, PG_PORT, ""
    else:
        host, port, query = cfg.postgres.host, cfg.postgres.port, f"?sslmode={cfg.postgres.sslmode}"
    return f"postgresql+psycopg://{quote(fs.user, safe='')}@{host}:{port}/{fs.database}{query}"


def pod_env(cfg: KubernetesConfig) -> list[dict]:
    """The container env entries that point a serving or job pod at the online store."""
    url = online_store_url(cfg)
    if url is None:
        return []
    return [*pods.plain_env(CONVEYOR_ONLINE_STORE_URL=url), pods.secret_env(PASSWORD_KEY, SECRET, PASSWORD_KEY)]


def init_script(cfg: KubernetesConfig) -> str:
    """A docker-entrypoint-initdb.d script (sourced once, on an empty data directory) creating the
    role and its database; the password comes from the container's FEATURES_PASSWORD (Secret
    `postgres`), never from the script."""
    fs = cfg.feature_store
    return (
        "# the online feature store: its own role and database (infra/kubernetes/feature_store.py)\n"
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$FEATURES_PASSWORD" <<\'SQL\'\n'
        f"CREATE ROLE {fs.user} LOGIN PASSWORD :'pw';\n"
        f"CREATE DATABASE {fs.database} OWNER {fs.user};\n"
        f"REVOKE CONNECT ON DATABASE {fs.database} FROM PUBLIC;\n"
        "SQL\n"
    )
