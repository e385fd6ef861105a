"""The env endpoint's stable process: it serves the *deployed* code and rolls onto new code
with no failed request.

    python -m ml.serving.launcher --host 127.0.0.1 --port 3101 --state-dir <run dir>/serving

`pulumi up` owns this process (the platform supervises it); `conveyor bundle deploy` owns the
code it runs (`core.serving_code`: the deploy writes `serving/code.json` naming the
deployment's code wheel in the env's bundle storage). The launcher

1. owns the public port: a small HTTP proxy in front of one *backend*, `bentoml serve` of the
   endpoint Bento built from the deployed code (`ml.serving.bento`, in the env's BentoML
   store: `BENTOML_HOME`). Clients keep their connections to the launcher, so a code change
   never closes a connection under them;
2. on new code: unpacks the wheel, builds its Bento, starts it on a free loopback port and
   waits for `/readyz` (the new code has loaded every model the endpoint configs name); only
   then does it send new requests there. The old backend finishes its in-flight requests and
   is stopped (SIGTERM). If the new code does not build or start, it is stopped, the old one
   keeps serving, and the reason goes into the launcher's status, where the deploy reads it;
3. restarts a backend that dies (meanwhile requests get 503 with Retry-After);
4. before any code is deployed to the env, answers itself: health 200, `/predict` 401 without a
   valid token, else 503 saying to deploy the bundle.

`GET /status` gains `code`: the artifact, git sha, deployment, Bento tag and sources it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from core import settings
from core.contract import storage_layout
from core.files import private_dir
from core.serving_code import HEARTBEAT_S, CodeRequest, Failure, LauncherStatus, read_request, write_status
from core.storage import Blobs
from ml.serving import heap

log = logging.getLogger("conveyor.launcher")
READY_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 30.0
STOP_GRACE_S = 20.0
KEEP_CODE = 3  # unpacked code versions kept on disk (the running one, the one before, ...)


@dataclass
class Backend:
    request: CodeRequest
    bento: str
    source: Path
    port: int
    proc: subprocess.Popen
    log: Path
    since: float = 0.0
    inflight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


class StartFailed(Exception):
    """The new code did not build or become ready; the message is the reason."""


def _die_with_parent() -> None:
    """In the backend, before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux), so a
    killed launcher never leaves a backend behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reason(text: str, limit: int = 600) -> str:
    """The telling lines of a failed build/start: the last error line, else the last lines."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "Exception" in ln or ln.startswith("error")]
    picked = errors[-1] if errors else " | ".join(lines[-3:])
    return picked[-limit:] or "no output"


class Launcher:
    def __init__(self, state_dir: Path, port: int, blobs: Blobs, env: str):
        self.state_dir = private_dir(state_dir)
        self.port = port
        self.blobs = blobs
        self.env = env
        self.instance = f"{socket.gethostname()}-{port}"
        self.active: Backend | None = None
        self.rolling: CodeRequest | None = None
        self.failed: Failure | None = None
        self.restarting = False
        self._stop = threading.Event()
        self._bentoml = str(Path(sys.executable).with_name("bentoml"))

    # ---- what runs ------------------------------------------------------------------------
    def _status(self) -> LauncherStatus:
        a = self.active
        state = "restarting" if self.restarting else "serving" if a else "starting" if self.rolling else "no_code"
        return LauncherStatus(instance=self.instance, host=socket.gethostname(), pid=os.getpid(), heartbeat=time.time(),
                              state=state, serving=a.request if a else None, bento=a.bento if a else None,
                              since=a.since if a else None, backend_pid=a.proc.pid if a else None,
                              source=str(a.source) if a else None, rolling=self.rolling, failed=self.failed)

    def code_info(self) -> dict:
        s = self._status()
        return {"state": s.state, "artifact": s.serving.artifact if s.serving else None,
                "version": s.serving.short if s.serving else None, "git_sha": s.serving.git_sha if s.serving else None,
                "deployment": s.serving.deployment if s.serving else None, "bento": s.bento, "source": s.source,
                "backend_pid": s.backend_pid, "since": s.since,
                "failed": s.failed.model_dump() if s.failed else None}

    def report(self) -> None:
        try:
            write_status(self.blobs, self._status())
        except Exception as exc:  # storage hiccup: the next heartbeat retries
            log.warning("cannot write launcher status: %s", exc)

    # ---- the control loop -------------------------------------------------------------------
    def manage(self) -> None:
        """Follow the code request; keep the backend alive. Runs in its own thread (a rollout
        blocks it for a while; the heartbeat has a thread of its own)."""
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("launcher tick failed")
            self._stop.wait(HEARTBEAT_S / 2)

    def _heartbeat(self) -> None:
        while not self._stop.is_set():
            self.report()
            self._stop.wait(HEARTBEAT_S)

    def _tick(self) -> None:
        active = self.active
        if active is not None and active.proc.poll() is not None and not self._stop.is_set():
            log.error("backend %s exited (%s); restarting it", active.bento, active.proc.returncode)
            self.restarting = True
            try:
                self._roll(active.request)
            finally:
                self.restarting = False
            return
        req = read_request(self.blobs)
        if req is None or (self.active is not None and self.active.request.artifact == req.artifact):
            return
        f = self.failed
        if f is not None and f.artifact == req.artifact and f.requested_at == req.requested_at:
            return  # this request already failed; a new deploy (new requested_at) retries it
        self._roll(req)

    def _roll(self, req: CodeRequest) -> None:
        """Start `req`'s code next to the running one; hand traffic over only once it is ready."""
        self.rolling = req
        self.report()
        try:
            backend = self._start(req)
        except Exception as exc:  # whatever stopped it, the deploy waiting for it must hear why
            reason = str(exc) if isinstance(exc, StartFailed) else f"{type(exc).__name__}: {exc}"
            self.failed = Failure(artifact=req.artifact, requested_at=req.requested_at, reason=reason, at=time.time())
            log.error("code %s did not start: %s", req.short, reason)
            return
        finally:
            self.rolling = None
        old, self.active = self.active, backend  # the handover: new requests go to the new backend
        self.failed = None
        log.info("serving code %s (%s) on backend port %s", req.short, backend.bento, backend.port)
        self.report()
        heap.settle()  # what starting the code left alive is long-lived: out of full GC passes' reach
        if old is not None:
            threading.Thread(target=self._drain, args=(old,), daemon=True).start()
        self._prune()

    def _drain(self, old: Backend) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while old.inflight > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        old.stop()
        log.info("stopped backend %s (%d requests still in flight)", old.bento, old.inflight)

    # ---- starting one version of the code ------------------------------------------------------
    def _unpack(self, req: CodeRequest) -> Path:
        code = self.state_dir / "code" / req.artifact[:16]
        if code.is_dir():
            return code
        wheel = self.state_dir / "wheels" / Path(req.wheel).name
        try:
            self.blobs.download(req.wheel, wheel)
        except (FileNotFoundError, OSError) as exc:
            raise StartFailed(f"cannot fetch the code wheel {req.wheel}: {exc}") from None
        tmp = code.with_name(code.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        tmp.rename(code)
        wheel.unlink(missing_ok=True)
        return code

    def _child_env(self, code: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(code)  # the deployed code, never the checkout the launcher came from
        env.setdefault("BENTOML_DO_NOT_TRACK", "true")
        return env

    def _build(self, req: CodeRequest, code: Path) -> str:
        labels = {"artifact": req.short, "git_sha": req.git_sha[:12] or "unknown", "deployment": req.deployment}
        cmd = [sys.executable, "-m", "ml.serving.bento", "--version", req.short,
               *[a for k, v in labels.items() for a in ("--label", f"{k}={v}")]]
        for attempt in (1, 2):
            try:
                proc = subprocess.run(cmd, cwd=code, env=self._child_env(code), capture_output=True, text=True,
                                      timeout=600)
            except subprocess.TimeoutExpired:
                raise StartFailed("building the endpoint Bento took over 600 s") from None
            if proc.returncode == 0:
                return proc.stdout.strip().splitlines()[-1]
            if attempt == 1 and "exist" not in proc.stderr:
                break  # only a race with another replica building the same Bento in a shared store is retried
        raise StartFailed(f"building the endpoint Bento failed: {_reason(proc.stderr + proc.stdout)}")

    def _start(self, req: CodeRequest) -> Backend:
        code = self._unpack(req)
        bento = self._build(req, code)
        name, version = bento.split(":", 1)
        home = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
        source = home / "bentos" / name / version / "src"
        port = _free_port()
        logs = private_dir(self.state_dir / "logs")
        log_path = logs / f"{req.short}-{port}.log"
        env = self._child_env(source)
        with open(log_path, "w") as out:
            proc = subprocess.Popen([self._bentoml, "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
                                    cwd=self.state_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        backend = Backend(request=req, bento=bento, source=source, port=port, proc=proc, log=log_path)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            if proc.poll() is not None:
                raise StartFailed(f"bentoml serve {bento} exited with {proc.returncode}: "
                                  f"{_reason(log_path.read_text(errors='replace'))} (log: {log_path})")
            try:
                if httpx.get(backend.url + "/readyz", timeout=2).status_code == 200:
                    backend.since = time.time()
                    return backend
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        backend.stop()
        raise StartFailed(f"bentoml serve {bento} was not ready within {READY_TIMEOUT_S:.0f}s "
                          f"(log: {log_path}): {_reason(log_path.read_text(errors='replace'))}")

    def _prune(self) -> None:
        """Keep the newest unpacked code versions (the running one among them)."""
        base = self.state_dir / "code"
        keep = {self.active.request.artifact[:16]} if self.active else set()
        dirs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in dirs[KEEP_CODE:]:
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def shutdown(self) -> None:
        self._stop.set()
        if self.active is not None:
            self.active.stop(10)  # within the supervisor's stop grace (20 s) with the front's 5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.serving.launcher", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", type=Path, required=True, help="unpacked code and backend logs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    storage_uri = settings.STORAGE_URI.get()
    if not storage_uri:
        print(f"error: {settings.STORAGE_URI.name} is not set: the launcher reads the deployed code from the env's "
              f"storage", file=sys.stderr)
        return 2
    launcher = Launcher(args.state_dir, args.port, Blobs(storage_layout(storage_uri).bundle),
                        settings.ENV.get() or "local")
    manager = threading.Thread(target=launcher.manage, name="code-manager", daemon=True)
    manager.start()
    from ml.serving import front
    from ml.serving.launch_proxy import Proxy

    try:  # SIGTERM: in-flight requests answer (5 s at most), then the backend stops
        front.run(Proxy(launcher), args.host, args.port, grace_s=5.0)
    finally:
        launcher.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
