"""The env's supervisord under its keeper (infra/local/keeper.py): `kill -9` of the daemon
itself brings it back, its programs stopped cleanly (SIGTERM) and started again; a shutdown
on purpose ends the keeper too."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from infra.local import supervisor

# A program that says when it stops cleanly and which pid it ran as.
PROGRAM = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
def term(*_):
    (out / f"term-{os.getpid()}").write_text("")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
(out / f"started-{os.getpid()}").write_text("")
while True:
    time.sleep(0.2)
"""


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_killed_supervisord_comes_back_with_its_programs(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    supervisor.ensure_daemon("keeper-test", run_dir)
    try:
        supervisor.write_program(run_dir, "prog", [sys.executable, str(script), str(out)], str(tmp_path), {},
                                 startsecs=1)
        supervisor.apply(run_dir)
        first = _wait(lambda: supervisor.wait_running(run_dir, "prog", 10).get("pid"), 15, "prog RUNNING")
        daemon, keeper = supervisor.daemon_pid(run_dir), supervisor.keeper_pid(run_dir)
        assert daemon and keeper and daemon != keeper

        killed = time.monotonic()
        os.kill(daemon, signal.SIGKILL)
        again = _wait(lambda: supervisor.daemon_pid(run_dir), 30, "a new supervisord")
        info = _wait(lambda: (i := supervisor.program_info(run_dir, "prog")) and i["statename"] == "RUNNING" and i,
                     30, "prog RUNNING again")
        back_s = time.monotonic() - killed
        assert again != daemon and supervisor.keeper_pid(run_dir) == keeper
        assert info["pid"] != first
        assert (out / f"term-{first}").exists(), "the orphaned program was not stopped with SIGTERM"
        assert not Path(f"/proc/{first}").exists() or "Z" in Path(f"/proc/{first}/stat").read_text().split()[2]
        print(f"supervisord kill -9: back with its program in {back_s:.1f} s")
    finally:
        supervisor.stop_daemon(run_dir)
    assert supervisor.daemon_pid(run_dir) is None
    assert supervisor.keeper_pid(run_dir) is None


# A program with a child of its own (as `mlflow server` runs uvicorn): the child says when it stops.
PARENT = """
import subprocess, sys, time
from pathlib import Path
child = subprocess.Popen([sys.executable, sys.argv[2], sys.argv[1]])
(Path(sys.argv[1]) / f"child-of-{__import__('os').getpid()}").write_text(str(child.pid))
while True:
    time.sleep(0.2)
"""


def test_what_a_killed_program_leaves_behind_is_stopped(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "parent.py").write_text(PARENT)
    supervisor.ensure_daemon("keeper-test", run_dir)
    try:
        supervisor.write_program(run_dir, "parent", [sys.executable, str(tmp_path / "parent.py"), str(out),
                                                     str(tmp_path / "prog.py")], str(tmp_path), {}, startsecs=1)
        supervisor.apply(run_dir)
        parent = _wait(lambda: supervisor.wait_running(run_dir, "parent", 10).get("pid"), 15, "parent RUNNING")
        child = int(_wait(lambda: (f := out / f"child-of-{parent}").exists() and f.read_text(), 10, "its child"))
        os.kill(parent, signal.SIGKILL)  # the child lives on, an orphan: what holds a killed server's port
        _wait(lambda: (out / f"term-{child}").exists(), 15, "the orphaned child to get SIGTERM")
        _wait(lambda: (i := supervisor.program_info(run_dir, "parent")) and i["statename"] == "RUNNING"
              and i["pid"] != parent, 30, "the parent restarted")
    finally:
        supervisor.stop_daemon(run_dir)
