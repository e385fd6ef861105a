"""PostgreSQL behind an env's MLflow on the local platform (`conveyor:tracking.database: postgresql`).

The server is Debian's `postgresql` package (binaries under /usr/lib/postgresql/<version>/bin;
`scripts/postgres.sh` installs it). Per environment:

- `initdb` into `<storage>/tracking/postgres` on the first `up` (superuser `conveyor`); later
  `up`s, and destroys that retain storage, keep the data;
- `postgres` under the env's supervisord, on 127.0.0.1:<conveyor:tracking.port> only (no unix
  socket), stopped with SIGINT (a fast shutdown: SIGTERM would wait for MLflow to disconnect);
- one login role `mlflow` owning two databases, `mlflow` (the tracking store) and
  `mlflow_auth` (basic-auth users), as MLflow keeps them apart.

Both passwords are `RandomSecret`s of the stack. PostgreSQL refuses to run as root: as root,
initdb and the server run in a user namespace where they are the `postgres` (else `nobody`)
user while their files stay owned by root, so the data can live in the env's owner-only storage.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from core.files import PRIVATE_FILE, atomic_write, private_dir
from infra.components.secrets import RandomSecret
from infra.config import ConfigError
from infra.local.resources import SupervisedProgram

SERVER_ROOT = Path("/usr/lib/postgresql")  # Debian: one <version>/bin per installed server
PACKAGE = "postgresql"
SUPERUSER = "conveyor"
ROLE = "mlflow"
TRACKING_DB = "mlflow"
AUTH_DB = "mlflow_auth"
HOST = "127.0.0.1"


def server_bin_dir(root: Path | None = None, data_dir: Path | None = None) -> Path:
    """The bin dir (holding `initdb` and `postgres`) of the newest installed server, or of the
    version that made `data_dir` when it holds data (a newer server cannot open it).

    Raises ConfigError naming the package to install when there is none."""
    root = root or SERVER_ROOT
    found = {d.name: d / "bin" for d in root.glob("*")
             if (d / "bin" / "initdb").is_file() and (d / "bin" / "postgres").is_file()}
    if not found:
        raise ConfigError(
            f"conveyor:tracking.database: postgresql needs the PostgreSQL server ({root}/<version>/bin/postgres): "
            f"install Debian's `{PACKAGE}` package (`make setup` does, as root; or `apt-get install {PACKAGE}`)"
        )
    made_by = data_dir / "PG_VERSION" if data_dir else None
    if made_by and made_by.is_file():
        version = made_by.read_text().strip()
        if version not in found:
            raise ConfigError(
                f"conveyor:tracking.database: {data_dir} holds PostgreSQL {version} data but only "
                f"{', '.join(sorted(found))} is installed: install `{PACKAGE}-{version}` (or pg_upgrade the data)"
            )
        return found[version]
    return max(found.values(), key=lambda d: [int(n) for n in re.findall(r"\d+", d.parent.name)] or [0])


def as_server_user(command: list[str]) -> list[str]:
    """`command`, run so PostgreSQL accepts its user: unchanged unless we are root."""
    if os.geteuid() != 0:
        return command
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        account = pwd.getpwnam("nobody")
    # Our uid maps to this account inside the namespace: initdb looks its name up, postgres
    # sees a non-root owner of its files, and outside they remain root's, mode 0700/0600.
    return [unshare, "--user", f"--map-user={account.pw_uid}", f"--map-group={account.pw_gid}", *command]


def database_uri(password: str, port: int, database: str) -> str:
    return f"postgresql://{ROLE}:{quote(password, safe='')}@{HOST}:{port}/{database}"


# --------------------------------------------------------------------------- the data directory
class _ClusterProvider(ResourceProvider):
    def create(self, props):
        data = Path(props["data_dir"])
        if not (data / "PG_VERSION").is_file():
            self._initdb(props, data)
        return CreateResult(id_=str(data), outs={**props, "exists": True})

    @staticmethod
    def _initdb(props, data: Path) -> None:
        private_dir(data.parent)
        shutil.rmtree(data, ignore_errors=True)  # an initdb that died half-way left debris
        pwfile = atomic_write(data.parent / ".initdb-password", props["superuser_password"], mode=PRIVATE_FILE)
        command = as_server_user([
            str(Path(props["bin_dir"]) / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions",
        ])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise RuntimeError(f"initdb {data} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")

    def read(self, id_, props):
        return ReadResult(id_=id_, outs={**props, "exists": (Path(props["data_dir"]) / "PG_VERSION").is_file()})

    def diff(self, _id, olds, news):
        replaces = ["data_dir"] if olds.get("data_dir") != news.get("data_dir") else []
        return DiffResult(changes=bool(replaces) or olds.get("exists") is False, replaces=replaces,
                          delete_before_replace=False)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self.create(news).outs)

    def delete(self, _id, _props):
        """Nothing: the files belong to the env's storage, which destroy removes or retains."""


class PostgresCluster(Resource, module="conveyor", name="PostgresCluster"):
    """A PostgreSQL data directory, made by `initdb` once; existing data is never touched."""

    def __init__(self, name: str, *, data_dir: str, bin_dir: str, superuser_password: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        props = {"data_dir": data_dir, "bin_dir": bin_dir, "superuser_password": superuser_password, "exists": None}
        super().__init__(_ClusterProvider(), name, props, opts)


# --------------------------------------------------------------------------- role and databases
def connect(port: int, user: str, password: str, database: str = "postgres", timeout: float = 120):
    """An autocommit psycopg connection, retried while the server starts (or recovers from a crash)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            # autocommit: CREATE DATABASE cannot run in a transaction
            return psycopg.connect(host=HOST, port=port, user=user, password=password, dbname=database,
                                   connect_timeout=5, autocommit=True)
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on {HOST}:{port} not reachable after {timeout:.0f}s: {exc}") from None
            time.sleep(0.5)


def ensure_role_and_databases(conn, role: str, password: str, databases: list[str]) -> None:
    """Role `role` (login, `password`) owning every database in `databases`; idempotent."""
    from psycopg import sql

    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        # utility statements take no server-side parameters: the password goes in as a quoted literal
        cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        for database in databases:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not cur.fetchone():
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database),
                                                                         sql.Identifier(role)))


class _DatabasesProvider(ResourceProvider):
    def _ensure(self, props) -> dict:
        conn = connect(int(props["port"]), SUPERUSER, props["superuser_password"])
        try:
            ensure_role_and_databases(conn, props["role"], props["password"], list(props["databases"]))
        finally:
            conn.close()
        return props

    def create(self, props):
        return CreateResult(id_=f"{HOST}:{props['port']}/{props['role']}", outs=self._ensure(props))

    def diff(self, _id, olds, news):
        keys = ["port", "role", "password", "superuser_password", "databases"]
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._ensure(news))

    def delete(self, _id, _props):
        """Nothing: the server and its data go (or stay) with the env's storage."""


class PostgresDatabases(Resource, module="conveyor", name="PostgresDatabases"):
    """A login role and the databases it owns, on a running server (waits until it answers)."""

    def __init__(self, name: str, *, port: int, superuser_password: pulumi.Input[str], role: str,
                 password: pulumi.Input[str], databases: list[str], opts: pulumi.ResourceOptions | None = None):
        props = {"port": port, "superuser_password": superuser_password, "role": role, "password": password,
                 "databases": databases}
        super().__init__(_DatabasesProvider(), name, props, opts)


# --------------------------------------------------------------------------- the component
class LocalPostgres(pulumi.ComponentResource):
    """initdb + supervised `postgres` + MLflow's role and databases, for one env.

    `backend_uri` and `auth_uri` (secret) are the SQLAlchemy URIs of the tracking store and
    the basic-auth user store; `ready` is what a client must depend on."""

    backend_uri: pulumi.Output[str]
    auth_uri: pulumi.Output[str]

    def __init__(self, name: str, *, env: str, port: int, data_dir: Path, run_dir: Path,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("conveyor:local:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bin_dir = server_bin_dir(data_dir=data_dir)
        superuser_password = RandomSecret(f"{env}-postgres-superuser-password", length=24, opts=child).value
        password = RandomSecret(f"{env}-postgres-mlflow-password", length=24, opts=child).value
        cluster = PostgresCluster(f"{name}-cluster", data_dir=str(data_dir), bin_dir=str(bin_dir),
                                  superuser_password=superuser_password, opts=child)
        command = as_server_user([
            str(bin_dir / "postgres"), "-D", str(data_dir),
            "-c", f"listen_addresses={HOST}", "-c", f"port={port}", "-c", "unix_socket_directories=",
        ])
        self.server = SupervisedProgram(
            f"{name}-server", env=env, run_dir=str(run_dir), program="postgres", command=command,
            directory=str(data_dir), environment={"LC_ALL": "C"}, stopsignal="INT",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
        )
        self.ready = PostgresDatabases(
            f"{name}-databases", port=port, superuser_password=superuser_password, role=ROLE, password=password,
            databases=[TRACKING_DB, AUTH_DB], opts=pulumi.ResourceOptions(parent=self, depends_on=[self.server]),
        )
        self.backend_uri = pulumi.Output.secret(password.apply(lambda pw: database_uri(pw, port, TRACKING_DB)))
        self.auth_uri = pulumi.Output.secret(password.apply(lambda pw: database_uri(pw, port, AUTH_DB)))
        self.register_outputs({})
