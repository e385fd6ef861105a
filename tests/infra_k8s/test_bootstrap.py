"""The MLflow pod's init container, against a real MLflow auth database (sqlite here, PostgreSQL in-cluster)."""

from __future__ import annotations

import json

from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

from infra.kubernetes import bootstrap


def _store(uri: str) -> SqlAlchemyStore:
    store = SqlAlchemyStore()
    store.init_db(uri)
    return store


def test_creates_users_then_rotates_passwords_idempotently(tmp_path):
    uri = f"sqlite:///{tmp_path / 'auth.db'}"
    users = {"conveyor-admin": {"password": "admin-password-123456", "admin": True},
             "data_scientist": {"password": "ds-password-1234567890", "admin": False}}
    assert bootstrap.ensure_users(uri, users) == ["conveyor-admin: created", "data_scientist: created"]
    store = _store(uri)
    assert store.authenticate_user("data_scientist", "ds-password-1234567890")
    assert store.get_user("conveyor-admin").is_admin and not store.get_user("data_scientist").is_admin

    users["data_scientist"]["password"] = "rotated-password-0987654321"
    assert bootstrap.ensure_users(uri, users)[1] == "data_scientist: password set"
    store = _store(uri)
    assert store.authenticate_user("data_scientist", "rotated-password-0987654321")
    assert not store.authenticate_user("data_scientist", "ds-password-1234567890")
    assert len(store.list_users()) == 2


def test_main_reports_missing_settings_without_a_traceback(monkeypatch, capsys):
    monkeypatch.delenv("CONVEYOR_AUTH_DB_URI", raising=False)
    assert bootstrap.main([]) == 2
    assert "CONVEYOR_AUTH_DB_URI" in capsys.readouterr().err


def test_main_syncs_the_users_file(tmp_path, monkeypatch, capsys):
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps({"ci": {"password": "ci-password-1234567890", "admin": False}}))
    monkeypatch.setenv("CONVEYOR_AUTH_DB_URI", f"sqlite:///{tmp_path / 'auth.db'}")
    monkeypatch.setenv("CONVEYOR_MLFLOW_USERS_FILE", str(users_file))
    monkeypatch.delenv("CONVEYOR_CREATE_BUCKET", raising=False)
    assert bootstrap.main([]) == 0
    assert "ci: created" in capsys.readouterr().out
    assert _store(f"sqlite:///{tmp_path / 'auth.db'}").authenticate_user("ci", "ci-password-1234567890")
