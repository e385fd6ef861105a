"""State kept private on the local platform: what Pulumi, its providers and supervisord
write is owner-only (dirs 0700, files 0600), and servers run with umask 077. The real
modes after a `pulumi up` are asserted in tests/e2e/test_environments.py."""

from __future__ import annotations

from pathlib import Path

from conveyor import toolchain
from infra.local import supervisor
from infra.local.resources import _DirectoryTreeProvider, _FileProvider
from tests.modes import mode, permissive_umask  # noqa: F401 (autouse: every test here)


def test_passphrase_and_pulumi_state_are_owner_only(tmp_path, monkeypatch):
    home = tmp_path / ".conveyor"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    env = toolchain.pulumi_env({})
    passphrase = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert mode(passphrase) == 0o600
    for folder in (home, home / "secrets", home / "pulumi", home / "pulumi-home"):
        assert mode(folder) == 0o700, folder


def test_a_passphrase_written_before_is_tightened(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o755)
    (secrets / "pulumi-passphrase").write_text("old")
    (secrets / "pulumi-passphrase").chmod(0o644)
    path = toolchain.passphrase_file(tmp_path)
    assert path.read_text() == "old"
    assert mode(path) == 0o600 and mode(secrets) == 0o700


def test_directory_tree_is_owner_only(tmp_path):
    root = tmp_path / "envs" / "dev" / "storage"
    _DirectoryTreeProvider().create({"root": str(root), "subdirs": ["tables", "tracking"], "private": True})
    assert {mode(p) for p in (tmp_path / "envs", root, root / "tables", root / "tracking")} == {0o700}


def test_a_tree_made_before_modes_were_private_is_tightened_once(tmp_path):
    root = tmp_path / "storage"
    (root / "tracking").mkdir(parents=True, mode=0o755)
    root.chmod(0o755)
    (root / "tracking" / "auth.db").write_text("hashes")
    (root / "tracking" / "auth.db").chmod(0o644)
    provider = _DirectoryTreeProvider()
    olds = {"root": str(root), "subdirs": ["tracking"], "retain_on_delete": False, "exists": True}
    news = {**olds, "private": True}
    assert provider.diff("id", olds, news).changes
    provider.update("id", olds, news)
    assert mode(root) == 0o700 and mode(root / "tracking") == 0o700
    assert mode(root / "tracking" / "auth.db") == 0o600
    assert not provider.diff("id", {**news, "exists": True}, news).changes


def test_generated_files_are_private_and_their_new_parents_too(tmp_path):
    path = tmp_path / "run" / "outputs.json"
    _FileProvider().create({"path": str(path), "content": "{}", "mode": "600"})
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_supervised_programs_and_the_daemon_run_with_umask_077(tmp_path):
    supervisor.write_program(tmp_path, "tracking", ["mlflow", "server"], str(tmp_path), {"SECRET": "x"})
    conf = tmp_path / "programs" / "tracking.conf"
    assert mode(conf) == 0o600
    assert "umask=077" in conf.read_text() and "stopsignal=TERM" in conf.read_text()
    assert "umask=077" in supervisor._DAEMON_CONF


def test_a_program_can_ask_for_its_own_stop_signal(tmp_path):
    supervisor.write_program(tmp_path, "postgres", ["postgres"], str(tmp_path), {"LC_ALL": "C"}, stopsignal="INT")
    assert "stopsignal=INT" in (tmp_path / "programs" / "postgres.conf").read_text()


def test_the_env_daemon_writes_its_run_dir_owner_only(tmp_path):
    run_dir = tmp_path / "run"
    supervisor.ensure_daemon("probe", run_dir)
    try:
        assert mode(run_dir / "supervisord.conf") == 0o600
        assert {mode(p) for p in (run_dir, run_dir / "logs", run_dir / "programs")} == {0o700}
        assert mode(run_dir / "logs" / "supervisord.log") == 0o600  # created under the daemon's umask
    finally:
        supervisor.stop_daemon(run_dir)
