"""Warm task start: a fork server that has already imported the heavy third-party libraries.

A job task is `python -c LAUNCHER <code_dir> <module> ARGS…` (`bundles.execution`); as a fresh
process each one paid 10–20 s importing pandas, scikit-learn, MLflow, Great Expectations… before
doing any work. Here a *starter* process (one per engine process and process-level env, started
in the background by the first task, which itself starts cold; stopped at exit or when the engine's
end of its stdin closes) imports those libraries once — never the deployed code, which is the task's to import — then
forks one child per task. The child does what a fresh `subprocess.Popen(start_new_session=True,
umask=…)` process would: new session, the task's env / cwd / umask, the log on fds 1 and 2, the
engine's stdin on 0, numpy's global RNG reseeded, then runs LAUNCHER. The engine gets a `Popen`-like
handle (`WarmProcess`: pid = process group, `wait(timeout)`, `returncode`, `rusage`), so timeouts and
cancel kill the task's group and the exit code is the task's (the starter reaps it and reports it).

Safety: the starter is single-threaded when it forks (it refuses to serve if an import started a
Python thread), opens no clients or connections, and starts with the task env's process-level
variables (`PROCESS_KEYS`: OMP_NUM_THREADS, which OpenMP/OpenBLAS read once when they load, PYTHON*,
…), taking OMP_NUM_THREADS's default from `ml.task` when unset. A task whose process-level
variables differ, and every task when the starter is off ($CONVEYOR_WARM_START=0), missing, dead or
refusing, starts the plain way (`start` returns None; on a starter problem it writes one line in
the task log saying so). Stdlib-only at module level: the starter runs this file (`_STARTER`).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Imported by the starter, in order; a missing one is skipped. Third-party only: never project code.
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "sklearn", "sklearn.ensemble", "sklearn.metrics",
           "sklearn.inspection", "scipy.stats", "yaml", "pydantic", "mlflow", "mlflow.sklearn", "mlflow.models",
           "great_expectations", "matplotlib", "matplotlib.pyplot", "skops.io", "dvc.repo", "bentoml")
# Read by native libraries or the interpreter when they load: the starter's must be the task's.
PROCESS_KEYS = ("PYTHON", "LD_", "OMP_", "OPENBLAS_", "MKL_", "MALLOC_", "ARROW_", "MPL", "GX_", "BENTOML_", "TZ", "LANG",
                "LC_", "HOME", "TMPDIR", "XDG_", "PATH", "VIRTUAL_ENV")
_NOT_FOR_STARTER = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME")
READY_TIMEOUT_S = 180.0
MIN_TASKS = 3  # python tasks a job needs before its first one boots a starter (the first starts cold anyway)
SPAWN_TIMEOUT_S = 30.0
_STARTER = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__warmstart__')"
_HDR = struct.Struct("!I")


def _process_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(PROCESS_KEYS)}


def _omp_default() -> str:
    return str(max(1, (os.cpu_count() or 2) // 2))  # what ml/task.py sets when the env does not say


def _task_process_env(env: dict[str, str]) -> dict[str, str]:
    return {"OMP_NUM_THREADS": _omp_default(), **_process_env(env)}


class WarmProcess:
    """A task forked by the starter: the `subprocess.Popen` surface `bundles.execution` uses."""

    def __init__(self, args: list[str], pid: int, conn: socket.socket):
        self.args, self.pid, self._conn, self._buf = args, pid, conn, b""
        self.returncode: int | None = None
        self.rusage: dict[str, float] = {}  # utime, stime (s) and maxrss (KiB) of the task's process tree

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def _readable(self, timeout: float | None) -> bool:
        return bool(select.select([self._conn], [], [], timeout)[0])

    def wait(self, timeout: float | None = None) -> int:
        while self.returncode is None:
            if b"\n" not in self._buf:
                if not self._readable(timeout):
                    raise subprocess.TimeoutExpired(self.args, timeout)
                chunk = self._conn.recv(4096)
                if chunk:
                    self._buf += chunk
                    continue
                # The starter died before reporting: the task's status is lost (it was its child).
                self._buf += json.dumps({"code": 1, "lost": True}).encode() + b"\n"
            status = json.loads(self._buf.split(b"\n", 1)[0])
            self.rusage = {k: status[k] for k in ("utime", "stime", "maxrss") if k in status}
            self.returncode = status["code"]
            self._conn.close()
        return self.returncode


class Starter:
    """One starter process; `spawn` forks a task from it. Raises OSError / RuntimeError when it cannot."""

    def __init__(self, env: dict[str, str]):
        self.process_env = _task_process_env(env)
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-warm-"))  # 0700: only this user reaches the socket
        self.socket = str(self.dir / "s")
        starter_env = {k: v for k, v in env.items() if k not in _NOT_FOR_STARTER and not k.startswith("CONVEYOR_")}
        starter_env.update(self.process_env)
        self._errlog = open(self.dir / "starter.log", "wb")  # the starter's stderr while it lives
        self.proc = subprocess.Popen([sys.executable, "-c", _STARTER, __file__, self.socket, *PRELOAD], cwd=self.dir,
                                     env=starter_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._errlog, start_new_session=True, bufsize=0)  # unbuffered: select sees each line
        line, deadline = "", time.monotonic() + READY_TIMEOUT_S
        while line != "ready":  # a library may print on stdout while it loads: skip to our line
            if not select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                line = f"no answer in {READY_TIMEOUT_S:.0f}s"
                break
            line = self.proc.stdout.readline().decode().strip()
            if not line or line.startswith("refused"):
                break
        if line != "ready":
            self.stop()
            raise RuntimeError(f"the starter did not start ({line or self._last_error()})")

    def _last_error(self) -> str:
        lines = (self.dir / "starter.log").read_text(errors="replace").strip().splitlines() if self.dir.exists() else []
        return lines[-1] if lines else f"exit code {self.proc.poll()}"

    def spawn(self, cmd: list[str], cwd: Path, env: dict[str, str], log_fd: int, umask: int) -> WarmProcess:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the starter exited ({self._last_error()})")
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(SPAWN_TIMEOUT_S)  # a starter that hangs must not hang the task: it then starts cold
        try:
            conn.connect(self.socket)
            body = json.dumps({"argv": cmd[1:], "cwd": str(cwd), "env": env, "umask": umask}).encode()
            socket.send_fds(conn, [_HDR.pack(len(body))], [log_fd, 0 if _has_stdin() else log_fd])  # Popen's child inherits fd 0
            conn.sendall(body)
            reply = b""
            while b"\n" not in reply:
                chunk = conn.recv(4096)
                if not chunk:
                    raise RuntimeError(f"the starter refused the task ({self._last_error()})")
                reply += chunk
            conn.settimeout(None)
            line, rest = reply.split(b"\n", 1)
            proc = WarmProcess(cmd, int(line.split()[1]), conn)
            proc._buf = rest  # a task that ended at once: its status came with its pid
            return proc
        except BaseException:
            conn.close()
            raise

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()  # EOF: the starter exits (running tasks are not its to stop)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._errlog.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_stdin() -> bool:
    try:
        os.fstat(0)
        return True
    except OSError:
        return False


# One starter per interpreter and process-level env, for the life of this process (a CLI run, the
# scheduler, a test session): key -> Starter, None while it loads, or why it cannot serve.
_starters: dict[tuple, Starter | str | None] = {}
_lock = threading.Lock()


def enabled() -> bool:
    from core import settings

    return bool(settings.WARM_START.get())


def _key(env: dict[str, str]) -> tuple:
    return (sys.executable, tuple(sorted(_task_process_env(env).items())))


def _boot(key: tuple, env: dict[str, str]) -> None:
    try:
        state: Starter | str = Starter(env)
    except (OSError, RuntimeError) as exc:
        state = str(exc)
    with _lock:
        _starters[key] = state


def ready(env: dict[str, str], timeout: float = READY_TIMEOUT_S) -> bool:
    """Start the starter for tasks with `env` if none is, and wait until it serves (tests, benchmarks)."""
    key, deadline = _key(env), time.monotonic() + timeout
    with _lock:
        if key not in _starters:
            _starters[key] = None
            threading.Thread(target=_boot, args=(key, env), name="warmstart-boot", daemon=True).start()
    while _starters.get(key) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return isinstance(_starters.get(key), Starter)


def start(cmd: list[str], cwd: Path, env: dict[str, str], log, umask: int = 0o077, boot: bool = True) -> WarmProcess | None:
    """Start task `cmd` (`[python, -c, LAUNCHER, …]`) from the starter for its process-level env.

    None: start it the old way — warm start is off, the starter is still loading (the first task
    starts the loading and goes cold: it would have waited about as long), or it cannot serve
    (then one line in `log` says why). `boot=False`: use a starter that is already loaded, never
    start loading one (a short job would pay for loading it and not use it)."""
    if not enabled() or not os.path.isdir(cwd):
        return None  # a missing cwd fails in Popen, as it always did
    key = _key(env)
    with _lock:
        state = _starters.get(key, "")
        if state == "":
            if not boot:
                return None
            _starters[key] = None
            threading.Thread(target=_boot, args=(key, env), name="warmstart-boot", daemon=True).start()
            return None
    if state is None:
        return None
    try:
        if isinstance(state, str):
            raise RuntimeError(state)
        return state.spawn(cmd, cwd, env, log.fileno(), umask)
    except (OSError, RuntimeError, ValueError) as exc:
        if isinstance(state, Starter) and state.proc.poll() is not None:
            with _lock:
                _starters[key] = str(exc)  # it died: later tasks go cold at once, saying why
        log.write(f"warm start unavailable: {exc}; starting the task in a new process\n")
        log.flush()
        return None


def starters_cpu_s() -> float:
    """CPU seconds the live starters used themselves (loading, forking; not the tasks they forked)."""
    total = 0.0
    for s in [s for s in _starters.values() if isinstance(s, Starter)]:
        try:
            fields = Path(f"/proc/{s.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


@atexit.register
def stop_all() -> None:
    """Stop every starter of this process (at exit; tests)."""
    with _lock:
        starters = [s for s in _starters.values() if isinstance(s, Starter)]
        _starters.clear()
    for s in starters:
        s.stop()


# --- the starter process (runs this file; stdlib only) ---------------------------------------------
def _serve(sock_path: str, preload: list[str]):
    """Preload, then fork a task per request. Returns (in the child only) the request to run."""
    import gc
    import importlib
    import selectors

    for name in preload:
        if select.select([0], [], [], 0)[0] and not os.read(0, 64):
            return None  # the engine exited while we loaded (a one-task run): no one to serve
        try:
            importlib.import_module(name)
        except Exception as exc:  # not installed / broken: the task imports it itself, or fails as before
            print(f"warm start: skipped {name}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        if threading.active_count() != 1:
            print(f"refused: importing {name} started a thread; forking is unsafe", flush=True)
            raise SystemExit(3)
    # The preloaded objects live as long as the process: out of the collector's sight, so a child's
    # collections (its exit's full one took 2-8 s) neither walk them nor copy their pages.
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    print("ready", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    sel.register(0, selectors.EVENT_READ, "stdin")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection to report on)
    while True:
        for key, _ in sel.select():
            if key.data == "stdin":
                if not os.read(0, 64):
                    return None  # the engine closed our stdin (or died): stop serving
            elif key.data is None:
                conn, _ = listener.accept()
                conn.settimeout(10)  # one silent client must not stall every other task's start
                try:
                    req, fds = _read_request(conn)
                except (OSError, ValueError) as exc:
                    print(f"warm start: bad request: {exc}", file=sys.stderr)
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    listener.close()
                    for pidfd, (_, other) in children.items():
                        os.close(pidfd)
                        other.close()
                    conn.close()
                    os.close(r)
                    return req, fds, w
                os.close(w)
                os.read(r, 1)  # the child has its own session: the engine may kill its group from now on
                os.close(r)
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                sel.register(pidfd, selectors.EVENT_READ, "child")
                conn.sendall(f"pid {pid}\n".encode())
            else:
                pid, conn = children.pop(key.fd)
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status, ru = os.wait4(pid, 0)
                report = {"code": os.waitstatus_to_exitcode(status), "utime": ru.ru_utime, "stime": ru.ru_stime,
                          "maxrss": ru.ru_maxrss}
                try:
                    conn.sendall(json.dumps(report).encode() + b"\n")
                except OSError:
                    pass  # the engine stopped waiting
                conn.close()


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    hdr, fds, _, _ = socket.recv_fds(conn, _HDR.size, 2)
    if len(hdr) != _HDR.size or len(fds) != 2:
        raise ValueError("short header")
    size, body = _HDR.unpack(hdr)[0], b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("short body")
        body += chunk
    return json.loads(body), fds


def _become_task(req: dict, fds: list[int], ready_w: int) -> None:
    """In the forked child: what Popen(start_new_session=True, cwd, env, umask, stdout=log) would set up."""
    os.setsid()
    os.write(ready_w, b"x")
    os.close(ready_w)
    log_fd, stdin_fd = fds
    os.dup2(stdin_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    for fd in {log_fd, stdin_fd} - {0, 1, 2}:
        os.close(fd)
    os.chdir(req["cwd"])
    os.umask(req["umask"])
    os.environ.clear()
    os.environ.update(req["env"])
    if "numpy.random" in sys.modules:  # forked children must not share the starter's random stream
        sys.modules["numpy.random"].seed()
    sys.argv = ["-c", *req["argv"][2:]]  # argv = [-c, LAUNCHER, code_dir, module, ARGS…]


if __name__ == "__warmstart__":
    _task = _serve(sys.argv[2], sys.argv[3:])
    if _task is None:
        raise SystemExit(0)
    _become_task(*_task)
    _launcher = _task[0]["argv"][1]
    del _task
    try:
        exec(compile(_launcher, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as _exc:  # what the interpreter prints for an uncaught error, without this frame
        _exc.__traceback__ = _exc.__traceback__.tb_next
        sys.excepthook(type(_exc), _exc, _exc.__traceback__)
        raise SystemExit(1) from None
