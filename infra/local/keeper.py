"""The keeper of one env's `supervisord`: it starts the daemon in the foreground and starts it
again when it dies (a `kill -9`, an OOM kill, a crash).

    python infra/local/keeper.py --conf <run dir>/supervisord.conf --pidfile <run dir>/keeper.pid

supervisord restarts the env's programs; nothing restarted supervisord. When it dies its
programs live on as orphans, unsupervised, and still hold their ports, so a new daemon could
not start them. The keeper is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): the orphans
become its children. When the daemon dies unexpectedly, the keeper stops them as
supervisord would have (SIGTERM to each program's process group — a clean stop, so e.g. the
endpoint drains its inference log — then SIGKILL after `--stop-wait` seconds) and starts the
daemon again, which starts every program. While the daemon lives, an orphan that reaches the
keeper is what a dead program left behind (a child still holding its port): it is stopped the
same way, so supervisord's restart of that program can bind again. A daemon that exits with status 0 was shut down on
purpose (`supervisor.stop_daemon`, `conveyor env down`): the keeper then exits too. SIGTERM to
the keeper is forwarded to the daemon (a clean shutdown of everything).

Standard library only, run by path: it must start wherever supervisord can.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
RESTART_PAUSE_S = 1.0  # between a death and the next start: a daemon that dies at once must not spin


def _log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} keeper[{os.getpid()}]: {msg}", flush=True)


def _children() -> list[int]:
    """Pids whose parent is this process (the orphans it inherited, as subreaper): one small
    /proc file where the kernel has it (polled every 0.2 s, so no scan of every process)."""
    me = os.getpid()
    try:
        listed = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    except OSError:
        return _scan_children(me)
    return [int(p) for p in listed if running(int(p))]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after "(comm)" — state, ppid, pgrp, ... — or None if
    there is no such process (also used by supervisor.py and the reliability tests)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def running(pid: int) -> bool:
    """Whether `pid` exists and is no zombie (a zombie has exited: only its wait status is left)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _scan_children(me: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))) and int(fields[1]) == me and fields[0] != "Z":
            found.append(int(entry))
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_group(pid: int, sig: int) -> None:
    try:
        pgid = os.getpgid(pid)
        if pgid == pid:  # supervisord makes every program a process-group leader
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_orphans(stop_wait_s: float) -> int:
    """Stop every inherited program (TERM, then KILL past `stop_wait_s`); how many there were.
    Repeated until none is left: a program's own children reach the keeper when it exits."""
    seen: set[int] = set()
    deadline = time.monotonic() + stop_wait_s
    while True:
        _reap()
        orphans = _children()
        if not orphans:
            return len(seen)
        late = time.monotonic() > deadline
        for pid in orphans:
            if pid not in seen or late:
                _signal_group(pid, signal.SIGKILL if late else signal.SIGTERM)
                seen.add(pid)
        time.sleep(0.1)


def _watch(daemon: int, stop_wait_s: float) -> int:
    """Until the daemon exits (its wait status): reap what exits, and stop what a dead program
    left behind. A program that dies (say `kill -9` of `mlflow server`) can leave children that
    still hold its port (its uvicorn), so supervisord's restart of it could never bind: they
    reach the keeper as orphans while the daemon lives, and are stopped like its programs."""
    first_seen: dict[int, float] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid == daemon:
            return status
        if pid:
            first_seen.pop(pid, None)
            continue
        now = time.monotonic()
        for orphan in _children():
            if orphan == daemon:
                continue
            if orphan not in first_seen:
                first_seen[orphan] = now
                _log(f"pid {orphan} outlived its supervised parent: stopping it")
                _signal_group(orphan, signal.SIGTERM)
            elif now - first_seen[orphan] > stop_wait_s:
                _signal_group(orphan, signal.SIGKILL)
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="keeper", description=__doc__.splitlines()[0])
    ap.add_argument("--conf", required=True, type=Path)
    ap.add_argument("--pidfile", required=True, type=Path)
    ap.add_argument("--supervisord", default=str(Path(sys.executable).with_name("supervisord")))
    ap.add_argument("--stop-wait", type=float, default=20.0, help="seconds before a stopping orphan is killed")
    args = ap.parse_args(argv)
    os.umask(0o077)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _log(f"prctl(PR_SET_CHILD_SUBREAPER) failed (errno {ctypes.get_errno()}): orphans go to init")
    args.pidfile.write_text(f"{os.getpid()}\n")
    state = {"daemon": None, "stopping": False}

    def forward(signum, _frame):
        state["stopping"] = True
        if state["daemon"] is not None:
            try:
                os.kill(state["daemon"], signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        while not state["stopping"]:
            daemon = subprocess.Popen([args.supervisord, "-n", "-c", str(args.conf)], cwd=args.conf.parent)
            state["daemon"] = daemon.pid
            _log(f"supervisord started (pid {daemon.pid})")
            status = _watch(daemon.pid, args.stop_wait)
            daemon.returncode = code = os.waitstatus_to_exitcode(status)
            state["daemon"] = None
            if code == 0 or state["stopping"]:
                _log(f"supervisord exited ({code}): shut down on purpose")
                break
            _log(f"supervisord died ({code}): stopping its orphaned programs, then starting it again")
            stopped = stop_orphans(args.stop_wait)
            _log(f"{stopped} orphaned program(s) stopped")
            time.sleep(RESTART_PAUSE_S)
    finally:
        stop_orphans(args.stop_wait)
        try:
            if args.pidfile.read_text().strip() == str(os.getpid()):
                args.pidfile.unlink()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
