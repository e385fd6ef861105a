"""Sampling profiles with py-spy (`pip install py-spy`): record, read the raw stacks, summarise.

py-spy samples from outside the process, so the profiled code runs unchanged and at
nearly full speed. `record_command` wraps a command; `record_pid` attaches to a running
process tree for a while. Both write py-spy's "raw" format (one collapsed stack per line
with its sample count), which `read` turns into `Stack`s and speedscope or flamegraph.pl
can open as they are.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = f"{Path(sys.executable).parent / 'pip'} install py-spy"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Frame:
    func: str
    file: str

    def label(self) -> str:
        return f"{self.func} ({_short(self.file)})"


@dataclass(frozen=True)
class Stack:
    """One distinct stack, outermost frame first. `processes` are py-spy's process markers
    (more than one for a sample taken in a child of the recorded process)."""

    processes: tuple[str, ...]
    frames: tuple[Frame, ...]
    samples: int

    @property
    def background_thread(self) -> bool:
        return bool(self.frames) and self.frames[0].func.startswith("Thread._bootstrap")


def executable() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def record_command(cmd: list[str], out: Path, rate: int = 100, idle: bool = True, subprocesses: bool = False,
                   **run_kwargs) -> subprocess.CompletedProcess:
    """Run `cmd` under py-spy; `idle` keeps samples of threads waiting (I/O, sleeps, locks)."""
    spy = executable()
    if spy is None:
        raise FileNotFoundError(f"py-spy not found: {INSTALL_HINT}")
    flags = ["--rate", str(rate), "--nonblocking", "--format", "raw", "-o", str(out)] + (["--idle"] if idle else [])
    flags += ["--subprocesses"] if subprocesses else []
    return subprocess.run([spy, "record", *flags, "--", *cmd], **run_kwargs)


def record_pid(pid: int, out: Path, seconds: float, rate: int = 200, idle: bool = False) -> subprocess.Popen:
    """Start sampling process `pid` and its children for `seconds`; wait on the returned process."""
    spy = executable()
    if spy is None:
        raise FileNotFoundError(f"py-spy not found: {INSTALL_HINT}")
    flags = ["--pid", str(pid), "--subprocesses", "--duration", str(max(1, round(seconds))), "--rate", str(rate),
             "--nonblocking", "--format", "raw", "-o", str(out)] + (["--idle"] if idle else [])
    return subprocess.Popen([spy, "record", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def read(path: Path) -> list[Stack]:
    stacks = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        processes, frames = [], []
        for part in body.split(";"):
            if part.startswith("process "):
                processes.append(part)
                continue
            m = _FRAME.match(part)
            frames.append(Frame(m["func"], m["file"]) if m else Frame(part, ""))
        stacks.append(Stack(tuple(processes), tuple(frames), int(count)))
    return stacks


# Frames under which everything of a thread runs: their inclusive share says nothing.
ROOT_FILES = ("threading.py", "<frozen runpy>", "click/core.py", "asyncio/runners.py", "asyncio/base_events.py",
              "asyncio/events.py", "uvicorn/server.py", "uvicorn/_compat.py", "_bentoml_impl/worker/service.py",
              "anyio/_backends/_asyncio.py", "concurrent/futures/thread.py")


def top_frames(stacks: list[Stack], n: int = 15) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive) shares of all samples, highest first: where the CPU is, and under what
    (thread and event-loop roots left out of the inclusive list)."""
    total = sum(s.samples for s in stacks) or 1
    own, under = Counter(), Counter()
    for s in stacks:
        if s.frames:
            own[s.frames[-1].label()] += s.samples
        for label in {f.label() for f in s.frames if not f.file.endswith(ROOT_FILES)}:
            under[label] += s.samples
    share = lambda c: [(k, v / total) for k, v in c.most_common(n)]  # noqa: E731
    return share(own), share(under)


def _short(file: str) -> str:
    """site-packages/pandas/core/frame.py → pandas/core/frame.py; project files stay relative."""
    for marker in ("site-packages/", "lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1].split("/", 1)[-1] if marker == "lib/python3" else file.split(marker, 1)[1]
    return file
