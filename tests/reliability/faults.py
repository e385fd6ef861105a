"""The harness of tests/reliability/test_faults.py: steady traffic that remembers every row it
got an answer for, the env's supervised processes, and the figures of one fault.

`Traffic` posts batches of rows with unique ids to the env's endpoint, one after another, and
records when each batch was answered and how; `lost(...)` compares the answered ids with the
endpoint's inference table. `Figures` is one row of the fault table (printed by the test, copied
into docs/reliability.md).
"""

from __future__ import annotations

import os
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.local import supervisor
from infra.local.keeper import running, stat_fields
from ml.serving.inference_log import read_table


@dataclass
class Answer:
    sent: float
    answered: float
    status: int  # 0: no HTTP answer (connection refused/reset, timeout)
    ids: list[str]
    versions: set[str] = field(default_factory=set)


class Traffic:
    """Batches of `batch` rows to `url` until stopped; every answer is kept (`answers`)."""

    def __init__(self, url: str, token: str, rows: list[dict], batch: int = 5, pause_s: float = 0.02,
                 id_column: str = "transaction_id"):
        self.url, self.rows, self.batch, self.pause_s, self.id_column = url, rows, batch, pause_s, id_column
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._n = 0

    def _next(self) -> list[dict]:
        out = []
        for _ in range(self.batch):
            row = dict(self.rows[self._n % len(self.rows)])
            row[self.id_column] = f"fault-{os.getpid()}-{self._n}"
            self._n += 1
            out.append(row)
        return out

    def _run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as http:
            while not self._stop.is_set():
                rows = self._next()
                sent = time.time()
                try:
                    resp = http.post(self.url, json={"rows": rows})
                    status = resp.status_code
                    versions = {str(p.get("model_version")) for p in resp.json()} if status == 200 else set()
                except (httpx.HTTPError, ValueError):
                    status, versions = 0, set()
                self.answers.append(Answer(sent, time.time(), status, [r[self.id_column] for r in rows], versions))
                self._stop.wait(self.pause_s)

    def start(self) -> Traffic:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def mark(self) -> int:
        return len(self.answers)

    def since(self, mark: int) -> list[Answer]:
        return self.answers[mark:]

    def wait_ok(self, after: float, timeout: float, streak: int = 3) -> float:
        """Seconds from `after` until `streak` answers in a row sent after it were 200 (time back)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recent = [a for a in self.answers if a.sent >= after]
            for i in range(len(recent) - streak + 1):
                if all(a.status == 200 for a in recent[i:i + streak]):
                    return recent[i].answered - after
            time.sleep(0.1)
        raise AssertionError(f"the endpoint did not answer {streak} requests in a row within {timeout} s")

    def back_after(self, after: float, timeout: float, quiet_s: float = 5.0) -> float:
        """Seconds from `after` until the last failed answer, once `quiet_s` of answers sent
        later all succeeded (time back: the outage ends with its last failure; 0 if none failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recent = [a for a in self.answers if a.sent >= after]
            bad = [a for a in recent if a.status != 200]
            last_bad = bad[-1].answered if bad else after
            later = [a for a in recent if a.sent > last_bad]
            if later and later[-1].answered - last_bad >= quiet_s and all(a.status == 200 for a in later):
                return last_bad - after
            time.sleep(0.2)
        raise AssertionError(f"the endpoint did not answer steadily again within {timeout} s")

    def wait_answers(self, n: int, timeout: float = 30) -> None:
        start = len(self.answers)
        deadline = time.monotonic() + timeout
        while len(self.answers) < start + n:
            assert time.monotonic() < deadline, f"traffic stalled: {len(self.answers) - start} of {n} answers"
            time.sleep(0.05)


def failed(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.status != 200]


def lost(answers: list[Answer], table: Path, settle_s: float = 15.0) -> tuple[list[str], dict[str, float]]:
    """Ids answered 200 that are not in the inference table (after waiting up to `settle_s` for
    the writers to catch up), and when each of them was answered."""
    answered = {i: a.answered for a in answers if a.status == 200 for i in a.ids}
    deadline = time.monotonic() + settle_s
    while True:
        frame = read_table(table)
        logged = set(frame["request_id"]) if len(frame) else set()
        missing = [i for i in answered if i not in logged]
        if not missing or time.monotonic() > deadline:
            return missing, {i: answered[i] for i in missing}
        time.sleep(0.5)


def pid_of(run_dir: Path, program: str) -> int:
    info = supervisor.program_info(run_dir, program) or {}
    assert info.get("statename") == "RUNNING", f"{program}: {info}"
    return int(info["pid"])


def wait_program(run_dir: Path, program: str, not_pid: int, timeout: float) -> float:
    """Seconds until `program` RUNNING again under a pid other than `not_pid`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        info = supervisor.program_info(run_dir, program) or {}
        if info.get("statename") == "RUNNING" and int(info.get("pid") or 0) not in (0, not_pid):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{program} not RUNNING again within {timeout} s: {supervisor.program_info(run_dir, program)}")


def stop_program(run_dir: Path, program: str) -> None:
    supervisor._rpc(run_dir).stopProcess(program)


def start_program(run_dir: Path, program: str) -> None:
    try:
        supervisor._rpc(run_dir).startProcess(program)
    except xmlrpc.client.Fault as exc:  # ALREADY_STARTED
        if "ALREADY_STARTED" not in str(exc):
            raise


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if running(p)]
        if not alive:
            return
        assert time.monotonic() < deadline, f"still running {timeout} s later: {alive}"
        time.sleep(0.1)


def wait_http(url: str, timeout: float, **kw) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if httpx.get(url, timeout=2, **kw).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s")


@dataclass
class Figures:
    """One row of the fault table."""

    fault: str
    requests: int
    failed: int
    back_s: float | None  # None: nothing was down for the endpoint's clients
    lost: int
    lost_bound: str
    champion_same: bool
    note: str = ""

    def row(self) -> str:
        back = "—" if self.back_s is None else f"{self.back_s:.1f} s"
        same = "yes" if self.champion_same else "NO"
        return (f"| {self.fault} | {self.requests} | {self.failed} | {back} | {self.lost} ({self.lost_bound}) | "
                f"{same} | {self.note} |")


HEADER = ("| fault | requests | failed | time back | inference rows lost (bound) | champion unchanged | note |\n"
          "|---|---:|---:|---:|---|---|---|")
