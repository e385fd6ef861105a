"""One `supervisord` per environment: it restarts what dies, and one env's teardown never
reaches another's processes (separate daemon, socket, config and logs per env). The daemon
runs under a keeper (`keeper.py`) that starts it again if it dies itself.

Everything here is owner-only: the run dir and its config files (they hold credentials)
are 0700/0600, and the daemon and every program run with umask 077, so the databases,
logs and artifacts servers create later are private too."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from core.files import PRIVATE_FILE, atomic_write, private_dir
from infra.local.keeper import running

_DAEMON_CONF = """\
; Written by Conveyor (infra/local). One daemon per environment.
[unix_http_server]
file={socket}
chmod=0700

[supervisord]
logfile={run_dir}/logs/supervisord.log
pidfile={run_dir}/supervisord.pid
childlogdir={run_dir}/logs
identifier=conveyor-{env}
nodaemon=false
silent=true
umask=077

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}

[include]
files = {run_dir}/programs/*.conf
"""

_PROGRAM_CONF = """\
[program:{name}]
command={command}
directory={directory}
environment={environment}
autostart=true
autorestart=true
startsecs={startsecs}
startretries=10
umask=077
stopsignal={stopsignal}
stopwaitsecs=20
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={run_dir}/logs/{name}.log
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=2
"""


def socket_path(run_dir: Path) -> Path:
    """Unix sockets are limited to ~108 bytes: long project paths get a short alias in /tmp."""
    path = run_dir / "supervisor.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"conveyor-{digest}.sock"


def _rpc(run_dir: Path):
    transport = SupervisorTransport(None, None, f"unix://{socket_path(run_dir)}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def daemon_pid(run_dir: Path) -> int | None:
    """The daemon's pid if it is alive and answering on its socket, else None."""
    try:
        return int(_rpc(run_dir).getPID())
    except (OSError, xmlrpc.client.Error):
        return None


def _quote_env(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


KEEPER = Path(__file__).with_name("keeper.py")


def keeper_pid(run_dir: Path) -> int | None:
    """The pid of the env's keeper (the process that restarts a dead supervisord) if it runs."""
    try:
        pid = int((run_dir / "keeper.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if KEEPER.name.encode() in cmdline else None


def _wait_daemon(run_dir: Path, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = daemon_pid(run_dir)
        if pid:
            return pid
        time.sleep(0.2)
    return None


def ensure_daemon(env: str, run_dir: Path) -> int:
    """Start the env's supervisord (under its keeper) if it is not running; return its pid."""
    pid = daemon_pid(run_dir)
    if pid:
        return pid
    if keeper_pid(run_dir):  # the keeper is bringing a dead daemon back: a second one would fight it
        pid = _wait_daemon(run_dir, 60)
        if pid:
            return pid
    for sub in ("logs", "programs"):
        private_dir(run_dir / sub)
    private_dir(run_dir)
    conf = run_dir / "supervisord.conf"
    atomic_write(conf, _DAEMON_CONF.format(socket=socket_path(run_dir), run_dir=run_dir, env=env), mode=PRIVATE_FILE)
    stale = socket_path(run_dir)
    if stale.exists():
        stale.unlink()
    supervisord = Path(sys.executable).with_name("supervisord")
    # umask from the start: supervisord opens its log before it applies its own `umask=`
    fd = os.open(run_dir / "logs" / "keeper.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        subprocess.Popen([sys.executable, str(KEEPER), "--conf", str(conf), "--pidfile", str(run_dir / "keeper.pid"),
                          "--supervisord", str(supervisord)], cwd=run_dir, umask=0o077, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, close_fds=True)
    finally:
        os.close(fd)
    pid = _wait_daemon(run_dir, 20)
    if pid:
        return pid
    raise RuntimeError(f"supervisord for {env} did not start; see {run_dir / 'logs' / 'supervisord.log'}")


def write_program(
    run_dir: Path,
    name: str,
    command: list[str],
    directory: str,
    environment: dict[str, str],
    startsecs: int = 3,
    stopsignal: str = "TERM",
) -> None:
    """`stopsignal`: what asks the program to stop cleanly (supervisord kills it after 20 s)."""
    conf = _PROGRAM_CONF.format(
        name=name,
        command=subprocess.list2cmdline(command),
        directory=directory,
        environment=",".join(f"{k}={_quote_env(v)}" for k, v in sorted(environment.items())),
        startsecs=startsecs,
        stopsignal=stopsignal,
        run_dir=run_dir,
    )
    atomic_write(run_dir / "programs" / f"{name}.conf", conf, mode=PRIVATE_FILE)  # env may hold secrets


def apply(run_dir: Path, restart: str | None = None) -> None:
    """Make the daemon match the program files (add/remove), optionally restarting one program."""
    rpc = _rpc(run_dir)
    added, changed, removed = rpc.reloadConfig()[0]
    for name in removed + changed:
        try:
            rpc.stopProcessGroup(name)
        except xmlrpc.client.Fault:
            pass
        rpc.removeProcessGroup(name)
    for name in added + changed:
        rpc.addProcessGroup(name)
    if restart and restart not in added + changed:
        info = program_info(run_dir, restart)
        if info and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            rpc.stopProcess(restart)
        rpc.startProcess(restart, False)


def program_info(run_dir: Path, name: str) -> dict | None:
    try:
        return _rpc(run_dir).getProcessInfo(name)
    except (OSError, xmlrpc.client.Error):
        return None


def wait_running(run_dir: Path, name: str, timeout: float) -> dict:
    """Wait until supervisord reports the program RUNNING (it passed `startsecs`)."""
    deadline = time.monotonic() + timeout
    info: dict = {}
    while time.monotonic() < deadline:
        info = program_info(run_dir, name) or {}
        if info.get("statename") in ("RUNNING", "FATAL", "EXITED"):
            break
        time.sleep(0.3)
    return info


def remove_program(run_dir: Path, name: str) -> None:
    (run_dir / "programs" / f"{name}.conf").unlink(missing_ok=True)
    if daemon_pid(run_dir):
        apply(run_dir)


def stop_daemon(run_dir: Path) -> None:
    """Stop the env's daemon (and with it every program it supervises), and its keeper."""
    pid, keeper = daemon_pid(run_dir), keeper_pid(run_dir)
    if not pid and not keeper:
        return
    if pid:
        try:
            _rpc(run_dir).shutdown()  # exits 0: the keeper exits with it
        except (OSError, xmlrpc.client.Error):
            os.kill(pid, signal.SIGTERM)
    elif keeper:
        os.kill(keeper, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # a zombie is gone too (e.g. the keeper, a child of the process that started it)
        if not any(p and running(p) for p in (pid, keeper)):
            return
        time.sleep(0.2)
    for p in (keeper, pid):  # the keeper first: it would start a killed daemon again
        if p and running(p):
            os.kill(p, signal.SIGKILL)
