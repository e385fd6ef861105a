"""Where a task's wall time goes, measured from outside: py-spy samples of the task process.

`run_task` runs one task under py-spy (wall-clock sampling: `--idle`, so waiting on MLflow
or disk counts; `--subprocesses`, so DVC's stage processes count) and returns its wall time
and `split` of it. Each sample of a main thread goes to the first bucket in `BUCKETS` whose
rule matches any frame of its stack; a process waiting on its child is left out (the child's
own samples cover that time). Bucket shares of the samples are scaled to the measured wall.

Adding a bucket: a (name, rule) pair in `BUCKETS`, in priority order.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import pyspy
from bench.pyspy import Frame, Stack

_SK_FIT = {"fit", "fit_transform", "_fit", "_fit_transform"}
_WAITING = {"Popen.wait", "Popen._wait", "Popen._try_wait", "Popen.communicate", "Popen._communicate"}


def _in(*parts: str) -> Callable[[Frame], bool]:
    return lambda f: any(p in f.file for p in parts)


BUCKETS: list[tuple[str, Callable[[Frame], bool]]] = [
    ("imports", lambda f: f.file.startswith("<frozen importlib")),
    ("importance", lambda f: "inspection/_permutation_importance" in f.file),
    ("plots", _in("matplotlib/")),
    ("fit", lambda f: "sklearn/" in f.file and f.func.rsplit(".", 1)[-1] in _SK_FIT),
    ("predict", lambda f: "sklearn/" in f.file and f.func.rsplit(".", 1)[-1].startswith(("predict", "decision"))),
    ("generate+features", _in("usecases/")),
    ("GX", _in("great_expectations/")),
    ("DVC", _in("dvc/", "dvc_data/", "dvc_objects/", "scmrepo/")),
    ("I/O", _in("pyarrow/", "pandas/io/", "fsspec/")),
    ("MLflow", _in("mlflow/", "skops/")),
    ("other", lambda f: True),
]
NAMES = [name for name, _ in BUCKETS]


@dataclass
class Timed:
    wall_s: float
    proc: subprocess.CompletedProcess
    split_s: dict[str, float] = field(default_factory=dict)  # empty without py-spy
    cpu_s: float = 0.0  # user + system CPU of the task's process tree (and py-spy's, when it samples)
    maxrss_kb: int = 0  # peak RSS of a task the warm starter forked (not this process's child)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def classify(stack: Stack) -> str | None:
    """The bucket of one sample, or None when it is not a main thread doing work."""
    if stack.background_thread:
        return None
    if any(f.func in _WAITING for f in stack.frames):
        return None
    if not stack.frames:
        return "imports"  # interpreter start-up, before the first Python frame
    for name, rule in BUCKETS:
        if any(rule(f) for f in stack.frames):
            return name
    return "other"


def split(stacks: list[Stack], wall_s: float) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for s in stacks:
        bucket = classify(s)
        if bucket is not None:
            counts[bucket] += s.samples
    total = sum(counts.values())
    return {name: wall_s * counts[name] / total for name in NAMES} if total else {}


def run_task(cmd: list[str], env: dict, cwd: Path, profile: Path | None, timeout: float, warm: bool = False) -> Timed:
    """Run `cmd`; under py-spy writing `profile` when it is given (and py-spy is installed).

    `warm`: start it as `bundles.execution` does, from the warm starter (`bundles.warmstart`) once
    that is loaded, else as a new process; py-spy then attaches to the task's pid."""
    if warm:
        return _run_like_the_engine(cmd, env, cwd, profile, timeout)
    # CPU seconds as well as wall: on a shared machine the wall time follows its load, the CPU
    # time much less, so before/after comparisons hold there too
    t0, cpu0 = time.perf_counter(), _children_cpu()
    if profile is None or pyspy.executable() is None:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        return Timed(time.perf_counter() - t0, proc, cpu_s=_children_cpu() - cpu0)
    # py-spy exits 0 whatever its command did: a small parent keeps the task's exit code.
    rc_file = profile.with_suffix(".rc")
    keep_rc = [sys.executable, "-m", "bench.training_split", str(rc_file), *cmd]
    proc = pyspy.record_command(keep_rc, profile, rate=50, idle=True, subprocesses=True, cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=timeout)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    proc.returncode = int(rc_file.read_text()) if rc_file.exists() else proc.returncode or 1
    stacks = pyspy.read(profile) if profile.exists() else []
    return Timed(wall, proc, split(stacks, wall), cpu)


def _run_like_the_engine(cmd: list[str], env: dict, cwd: Path, profile: Path | None, timeout: float) -> Timed:
    from bundles import warmstart
    from bundles.execution import _kill

    t0, cpu0 = time.perf_counter(), _children_cpu()
    with tempfile.TemporaryFile("w+") as log:
        proc = warmstart.start(cmd, cwd, env, log)
        if proc is None:  # the starter is loading (the job's first task) or unavailable: what the engine does
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, umask=0o077)
        spy = pyspy.record_pid(proc.pid, profile, timeout, rate=50, idle=True) \
            if profile is not None and pyspy.executable() else None
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise
        wall = time.perf_counter() - t0
        if spy is not None:
            spy.wait()
        log.seek(0)
        out = log.read()
    usage = getattr(proc, "rusage", {})
    cpu = _children_cpu() - cpu0 + usage.get("utime", 0.0) + usage.get("stime", 0.0)
    stacks = pyspy.read(profile) if spy is not None and profile.exists() else []
    done = subprocess.CompletedProcess(cmd, code, out, out)
    return Timed(wall, done, split(stacks, wall), cpu, int(usage.get("maxrss", 0)))


if __name__ == "__main__":  # python -m bench.training_split RC_FILE CMD...: run CMD, write its exit code
    Path(sys.argv[1]).write_text(str(subprocess.call(sys.argv[2:])))
