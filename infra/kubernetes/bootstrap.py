"""Init container of the MLflow pod: make the env's bucket and users exist before MLflow starts.

Runs inside the cluster (`python -m infra.kubernetes.bootstrap`) because Pulumi cannot
reach in-cluster Services. Idempotent: creates what is missing, resets passwords to the
values in the users file (written by Pulumi from its secrets), touches nothing else.

Environment:
  CONVEYOR_AUTH_DB_URI        SQLAlchemy URI of MLflow's basic-auth user database
  CONVEYOR_MLFLOW_USERS_FILE  JSON {username: {"password": ..., "admin": bool}}
  CONVEYOR_CREATE_BUCKET      bucket to create (only for the in-cluster MinIO)
  AWS_* / AWS_ENDPOINT_URL    object storage client settings
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from collections.abc import Callable

from core import settings


def _retry(what: str, fn: Callable[[], None], attempts: int = 30, delay: float = 2.0) -> None:
    """Dependencies (PostgreSQL, MinIO) start alongside us; wait for them instead of crash-looping."""
    for attempt in range(1, attempts + 1):
        try:
            fn()
            return
        except Exception as exc:
            if attempt == attempts:
                raise RuntimeError(f"{what} failed after {attempts} attempts: {exc}") from exc
            print(f"{what}: not ready yet ({type(exc).__name__}), retrying", flush=True)
            time.sleep(delay)


def ensure_bucket(bucket: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
        print(f"bucket {bucket}: exists", flush=True)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)
        print(f"bucket {bucket}: created", flush=True)


def ensure_users(db_uri: str, users: dict[str, dict]) -> list[str]:
    """Create missing users, reset passwords (and admin flags) of existing ones; returns what was done.

    The admin is handled here too: MLflow only reads `admin_password` when the admin does
    not exist yet, so without this a rotated admin password would never take effect.
    """
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(db_uri)  # runs the auth schema migrations on first start
    done = []
    for username, spec in sorted(users.items()):
        password, admin = spec["password"], bool(spec.get("admin", False))
        if store.has_user(username, use_primary=True):
            store.update_user(username, password=password, is_admin=admin)
            done.append(f"{username}: password set")
        else:
            store.create_user(username, password, is_admin=admin)
            done.append(f"{username}: created")
    return done


def main(argv: list[str] | None = None) -> int:
    db_uri = settings.AUTH_DB_URI.get()
    users_file = settings.MLFLOW_USERS_FILE.get()
    if not db_uri or not users_file:
        print(f"bootstrap: {settings.AUTH_DB_URI.name} and {settings.MLFLOW_USERS_FILE.name} must be set",
              file=sys.stderr)
        return 2
    try:
        users = json.loads(Path(users_file).read_text())
    except (OSError, ValueError) as exc:
        print(f"bootstrap: cannot read users file {users_file}: {exc}", file=sys.stderr)
        return 2
    try:
        if bucket := settings.CREATE_BUCKET.get():
            _retry(f"bucket {bucket}", lambda: ensure_bucket(bucket))
        result: list[str] = []
        _retry("auth database", lambda: result.extend(ensure_users(db_uri, users)))
    except RuntimeError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 1
    for line in result:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
