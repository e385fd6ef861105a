"""A real PostgreSQL server on loopback for SQL-source tests: Debian's server binaries (the ones
prod's MLflow runs on, scripts/postgres.sh installs them), started the way infra/local/postgres.py
starts them (as root: inside a user namespace), in a tmp dir, stopped on exit."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

USER = "ingest"  # the login role a use case's SQL source connects as
PASSWORD = "ingest-secret"
DATABASE = "sales"


def installed() -> bool:
    from infra.config import ConfigError
    from infra.local import postgres

    try:
        postgres.server_bin_dir()
        return True
    except ConfigError:
        return False


@dataclass
class PgServer:
    port: int
    superuser_password: str

    @property
    def url(self) -> str:
        """The SQLAlchemy URL a usecase.yml names: no password (the driver reads PGPASSWORD)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def connect(self, user: str = USER, password: str = PASSWORD):
        from infra.local import postgres

        return postgres.connect(self.port, user, password, DATABASE, timeout=30)


@contextlib.contextmanager
def postgres_server(root: Path) -> Iterator[PgServer]:
    """initdb + `postgres` on 127.0.0.1:<free port>, role `ingest` owning database `sales`."""
    from infra.local import postgres

    bin_dir = postgres.server_bin_dir()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    data, superuser = root / "pgdata", "su-secret"
    pwfile = root / ".pw"
    pwfile.write_text(superuser)
    init = subprocess.run(postgres.as_server_user([
        str(bin_dir / "initdb"), "-D", str(data), "-U", postgres.SUPERUSER, f"--pwfile={pwfile}",
        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions",
        "--no-sync"]),  # a throw-away cluster: no fsync (on a busy CI disk syncing is initdb's slow part)
        capture_output=True, text=True, timeout=300)
    pwfile.unlink()
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    port = free_port()
    log = (root / "postgres.log").open("w")
    proc = subprocess.Popen(postgres.as_server_user([
        str(bin_dir / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
        "-c", "unix_socket_directories=", "-c", "fsync=off"]),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "LC_ALL": "C"})
    try:
        conn = postgres.connect(port, postgres.SUPERUSER, superuser, timeout=60)
        try:
            postgres.ensure_role_and_databases(conn, USER, PASSWORD, [DATABASE])
        finally:
            conn.close()
        yield PgServer(port, superuser)
    finally:
        proc.send_signal(2)  # SIGINT: a fast shutdown
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
