"""Warm task start (`bundles.warmstart`): a task forked from the starter behaves as a fresh process.

Each test compares with the plain `subprocess.Popen` start `bundles.execution` falls back to. The
starter preloads one small library here (the real list costs ~10 s of CPU to load); jobs through
the engine, with the full list, are `test_run.py`'s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bundles import warmstart
from bundles.execution import LAUNCHER, _kill

TASK = """\
import json, os, sys, time
mode = sys.argv[1]
print("out line", flush=True)
print("err line", file=sys.stderr, flush=True)
if mode == "sleep":
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open("grandchild.pid", "w").write(str(child.pid))
    time.sleep(60)
if mode == "boom":
    raise ValueError("boom")
open("made.txt", "w").write("x")
json.dump({"argv": sys.argv, "cwd": os.getcwd(), "who": os.environ.get("WHO"), "path0": sys.path[0],
           "mode": oct(os.stat("made.txt").st_mode & 0o777), "session": os.getsid(0) == os.getpid(),
           "numpy_seeded": __import__("numpy").random.randint(1 << 30)}, open("seen.json", "w"))
raise SystemExit(int(mode))
"""


@pytest.fixture
def code(tmp_path, monkeypatch):
    """A deployed-code dir with one task module, and a starter that preloads numpy only."""
    (tmp_path / "code" / "pkg").mkdir(parents=True)
    (tmp_path / "code" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "code" / "pkg" / "task.py").write_text(TASK)
    monkeypatch.setattr(warmstart, "PRELOAD", ("numpy",))
    monkeypatch.delenv("CONVEYOR_WARM_START", raising=False)
    yield tmp_path / "code"
    warmstart.stop_all()


def _env(code: Path, who: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "WHO": who, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(code.parent), **extra}


def _cmd(code: Path, mode: str) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(code), "pkg.task", mode]


def _cold(code: Path, mode: str, env: dict, log: Path) -> int:
    with open(log, "a") as fh:
        return subprocess.Popen(_cmd(code, mode), cwd=code, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, umask=0o077).wait(60)


def _warm(code: Path, mode: str, env: dict, log: Path) -> warmstart.WarmProcess:
    assert warmstart.ready(env, timeout=120)
    with open(log, "a") as fh:
        proc = warmstart.start(_cmd(code, mode), code, env, fh)
    assert isinstance(proc, warmstart.WarmProcess)
    return proc


def test_warm_task_sees_its_own_argv_env_cwd_umask_and_exits_with_its_code(code, tmp_path):
    assert _cold(code, "3", _env(code, "cold"), tmp_path / "cold.log") == 3
    cold = json.loads((code / "seen.json").read_text())
    t0 = time.perf_counter()
    proc = _warm(code, "3", _env(code, "warm"), tmp_path / "warm.log")
    assert proc.wait(60) == 3
    warm_s = time.perf_counter() - t0
    warm = json.loads((code / "seen.json").read_text())
    assert _warm(code, "3", _env(code, "warm"), tmp_path / "warm2.log").wait(60) == 3
    again = json.loads((code / "seen.json").read_text())
    assert warm.pop("numpy_seeded") != again["numpy_seeded"]  # each child reseeds: not the starter's stream
    assert warm.pop("who") == "warm" and cold.pop("who") == "cold"
    cold.pop("numpy_seeded")
    assert warm == cold and warm["mode"] == "0o600" and warm["session"]
    assert (tmp_path / "warm.log").read_text() == (tmp_path / "cold.log").read_text() == "out line\nerr line\n"
    assert proc.rusage["utime"] >= 0 and warm_s < 30


def test_an_uncaught_error_is_logged_as_a_fresh_process_logs_it(code, tmp_path):
    assert _cold(code, "boom", _env(code, "x"), tmp_path / "cold.log") == 1
    assert _warm(code, "boom", _env(code, "x"), tmp_path / "warm.log").wait(60) == 1
    assert (tmp_path / "warm.log").read_text() == (tmp_path / "cold.log").read_text()
    assert "ValueError: boom" in (tmp_path / "warm.log").read_text()


def test_killing_the_task_kills_its_process_group(code, tmp_path):
    proc = _warm(code, "sleep", _env(code, "x"), tmp_path / "warm.log")
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.2)  # still running: the engine's timeout loop polls like this
    deadline = time.monotonic() + 60
    while not (code / "grandchild.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    grandchild = int((code / "grandchild.pid").read_text())
    _kill(proc)  # what a task timeout / cancel does
    assert proc.returncode == -signal.SIGTERM
    assert _gone(grandchild)


def _gone(pid: int) -> bool:
    """Exited (a zombie until whoever adopted it reaps it counts as exited)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_no_warm_start_when_switched_off_or_the_env_differs(code, tmp_path, monkeypatch):
    env = _env(code, "x")
    assert warmstart.ready(env, timeout=120)
    with open(tmp_path / "t.log", "a") as fh:
        other = {**env, "OMP_NUM_THREADS": "7"}  # its OpenMP must load with 7 threads: not the starter's
        assert warmstart.start(_cmd(code, "0"), code, other, fh) is None
        monkeypatch.setenv("CONVEYOR_WARM_START", "0")
        assert warmstart.start(_cmd(code, "0"), code, env, fh) is None
    assert (tmp_path / "t.log").read_text() == ""


def test_a_refusing_or_dead_starter_falls_back_with_one_line(code, tmp_path, monkeypatch):
    (tmp_path / "threaded.py").write_text("import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    monkeypatch.setattr(warmstart, "PRELOAD", ("threaded",))
    env = _env(code, "x")
    assert not warmstart.ready(env, timeout=120)
    with open(tmp_path / "t.log", "a") as fh:
        assert warmstart.start(_cmd(code, "0"), code, env, fh) is None
    assert (tmp_path / "t.log").read_text() == (
        "warm start unavailable: the starter did not start (refused: importing threaded started a thread; "
        "forking is unsafe); starting the task in a new process\n")

    monkeypatch.setattr(warmstart, "PRELOAD", ("numpy",))
    env = _env(code, "x", OMP_NUM_THREADS=str(os.cpu_count() + 1))  # another process-level env: another starter
    assert warmstart.ready(env, timeout=120)
    starter = warmstart._starters[warmstart._key(env)]
    starter.proc.kill()
    starter.proc.wait()
    with open(tmp_path / "t2.log", "a") as fh:
        assert warmstart.start(_cmd(code, "0"), code, env, fh) is None
    assert (tmp_path / "t2.log").read_text().startswith("warm start unavailable: the starter exited")
    assert _cold(code, "0", env, tmp_path / "cold.log") == 0  # the fallback the engine then takes
