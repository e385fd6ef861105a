"""The ground's contracts: one error root, one CLI wrapper, typed settings, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import settings
from core.cli import guarded, report
from core.errors import ConveyorError
from core.files import atomic_write

ROOT = Path(__file__).resolve().parents[2]


class Refused(ConveyorError):
    exit_code = 3

    def details(self) -> list[str]:
        return ["  first detail", "  second detail"]


# --- core.cli / core.errors -------------------------------------------------------------------

def test_user_error_is_one_line_and_exit_1(capsys):
    @guarded
    def command() -> None:
        raise ConveyorError("environment 'qa' has no outputs")

    with pytest.raises(SystemExit) as exit_:
        command()
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "error: environment 'qa' has no outputs\n" and captured.out == ""


def test_prefix_details_and_exit_code_come_from_the_error(capsys):
    @guarded(prefix="tool: ")
    def command() -> None:
        raise Refused("bundle is invalid")

    with pytest.raises(SystemExit) as exit_:
        command()
    assert exit_.value.code == 3
    assert capsys.readouterr().err.splitlines() == ["  first detail", "  second detail", "tool: error: bundle is invalid"]


def test_on_error_runs_before_the_report_and_only_for_user_errors(capsys):
    calls: list[str] = []

    @guarded(on_error=lambda: calls.append("cleanup"))
    def command(fail: type[BaseException]) -> None:
        raise fail("boom")

    with pytest.raises(SystemExit):
        command(ConveyorError)
    assert calls == ["cleanup"]
    with pytest.raises(ZeroDivisionError):
        command(ZeroDivisionError)
    assert calls == ["cleanup"]


def test_a_bug_propagates_unchanged():
    @guarded
    def command() -> float:
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        command()


def test_a_bug_keeps_its_traceback_in_a_real_process():
    code = "from core.cli import guarded\nguarded(lambda: 1 / 0)()\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ZeroDivisionError" in proc.stderr


def test_ctrl_c_exits_130_with_one_line(capsys):
    @guarded(prefix="conveyor: ")
    def command() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        command()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "conveyor: error: interrupted\n"


def test_return_value_and_metadata_pass_through():
    @guarded
    def command(x: int, *, y: int = 1) -> int:
        """Adds."""
        return x + y

    assert command(2, y=3) == 5
    assert command.__name__ == "command" and command.__doc__ == "Adds."


def test_report_prints_and_returns_the_exit_code(capsys):
    assert report(Refused("no"), prefix="x: ") == 3
    assert capsys.readouterr().err.endswith("x: error: no\n")


def test_conveyor_entry_point_uses_the_wrapper(monkeypatch, capsys):
    import conveyor.cli

    def app() -> None:
        raise ConveyorError("environment 'qa' has no outputs: provision it with `conveyor env up qa`")

    monkeypatch.setattr(conveyor.cli, "app", app)
    with pytest.raises(SystemExit) as exit_:
        conveyor.cli.main()
    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith("error: environment 'qa' has no outputs")


def test_user_facing_roots_share_the_one_base():
    from conveyor.demo import StepFailed
    from conveyor.stack import StackError
    from core.runtime import RuntimeContextError
    from ml.config import ConfigError
    from ml.data.versioning import DataVersionError
    from ml.errors import CheckFailed, TaskError, TrackingRefused

    for cls in (StepFailed, StackError, RuntimeContextError, ConfigError, DataVersionError, CheckFailed,
                TaskError, TrackingRefused):
        assert issubclass(cls, ConveyorError), cls
    # the builtin base each had before stays, so older `except` clauses still match
    assert issubclass(ConfigError, ValueError) and issubclass(StackError, RuntimeError)


# --- core.settings ----------------------------------------------------------------------------

def _declared() -> list[settings.Setting]:
    return [v for v in vars(settings).values() if isinstance(v, settings.Setting)]


def test_every_setting_is_a_unique_conveyor_variable():
    names = [s.name for s in _declared()]
    assert names and all(n.startswith("CONVEYOR_") for n in names)
    assert len(names) == len(set(names))
    assert all(s.doc for s in _declared())


def test_setting_reads_typed_values_and_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(settings.PERSONA.name, raising=False)
    assert settings.PERSONA.get() == "ci" and not settings.PERSONA.is_set()
    monkeypatch.setenv(settings.PERSONA.name, "")
    assert settings.PERSONA.get() == "ci" and not settings.PERSONA.is_set(), "empty counts as unset"
    monkeypatch.setenv(settings.PERSONA.name, "ml_engineer")
    assert settings.PERSONA.get() == "ml_engineer" and settings.PERSONA.is_set()

    monkeypatch.setenv(settings.BATCH_MAX_LATENCY_MS.name, "250")
    assert settings.BATCH_MAX_LATENCY_MS.get() == 250
    monkeypatch.setenv(settings.ENV_OUTPUTS.name, str(tmp_path / "dev.json"))
    assert settings.ENV_OUTPUTS.get() == tmp_path / "dev.json"
    for raw, expected in (("1", True), ("true", True), ("0", False), ("off", False)):
        monkeypatch.setenv(settings.RENDER_ONLY.name, raw)
        assert settings.RENDER_ONLY.get() is expected, raw


def test_paths_follow_their_settings(monkeypatch, tmp_path):
    from core import paths

    monkeypatch.setenv(settings.PROJECT_DIR.name, str(tmp_path))
    monkeypatch.delenv(settings.HOME.name, raising=False)
    assert paths.project_dir() == tmp_path.resolve()
    assert paths.state_dir() == tmp_path.resolve() / ".conveyor"
    monkeypatch.setenv(settings.HOME.name, str(tmp_path / "home"))
    assert paths.state_dir() == (tmp_path / "home").resolve()
    monkeypatch.setenv(settings.TOOLS_DIR.name, str(tmp_path / "tools"))
    assert paths.tools_dir() == (tmp_path / "tools").resolve()


# --- core.files -------------------------------------------------------------------------------

def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "deep" / "er" / "values.json"
    assert atomic_write(target, '{"a": 1}') == target
    assert target.read_text() == '{"a": 1}'
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["values.json"]


def test_atomic_write_applies_the_mode_before_the_file_appears(tmp_path):
    target = atomic_write(tmp_path / "secret", "s3cr3t", mode=0o600)
    assert os.stat(target).st_mode & 0o777 == 0o600


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = atomic_write(tmp_path / "config.json", "old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
