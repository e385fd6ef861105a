"""Run a workflow job's `run:` steps on this machine, the way a GitHub runner would.

Enough of Actions to prove the workflows' commands work as written: step order,
`if:` conditions (`always()`, `failure()`, `success()`, `a == 'b'`), `env` at every
level with `${{ inputs.* | secrets.* | vars.* | matrix.* }}` and `||` defaults,
`$GITHUB_ENV`, `$GITHUB_PATH`, `$GITHUB_OUTPUT` and `steps.<id>.outputs`, local
composite actions, and bash as `bash --noprofile --norc -eo pipefail`. Marketplace
actions (`actions/*`) are skipped: this machine already has Python and Go.
Anything else it meets raises, so a workflow cannot silently outgrow it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1: the key `on` reads as True
        doc["on"] = doc.pop(True)
    return doc


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    output: str = ""


@dataclass
class Context:
    inputs: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    matrix: dict[str, str] = field(default_factory=dict)
    github: dict[str, str] = field(default_factory=dict)
    steps: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    failed: bool = False

    def value(self, expr: str) -> Any:
        """One expression: `a.b.c`, `'literal'`, `true/false`, `a || b`, `a == b`, `x()`."""
        expr = expr.strip()
        if "||" in expr:
            for part in expr.split("||"):
                got = self.value(part)
                if got not in ("", None, False):
                    return got
            return got
        if "==" in expr:
            left, right = expr.split("==", 1)
            return str(self.value(left)).lower() == str(self.value(right)).lower()
        if expr in ("always()", "cancelled()", "success()", "failure()"):
            return {"always()": True, "cancelled()": False, "success()": not self.failed, "failure()": self.failed}[expr]
        if re.fullmatch(r"'[^']*'", expr):
            return expr[1:-1]
        if expr in ("true", "false"):
            return expr == "true"
        match = re.fullmatch(r"(inputs|secrets|vars|matrix|github)\.([\w-]+)", expr)
        if match:
            return getattr(self, match.group(1)).get(match.group(2), "")
        match = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
        if match:
            return self.steps.get(match.group(1), {}).get("outputs", {}).get(match.group(2), "")
        raise NotImplementedError(f"local_runner cannot evaluate ${{{{ {expr} }}}}")

    def render(self, text: Any) -> str:
        text = str(text)
        whole = EXPR.fullmatch(text.strip())
        if whole:
            got = self.value(whole.group(1))
            return str(got).lower() if isinstance(got, bool) else str(got)
        return EXPR.sub(lambda m: str(self.value(m.group(1))), text)

    def condition(self, cond: Any) -> bool:
        if cond is None:
            return not self.failed
        text = str(cond).strip()
        text = EXPR.fullmatch(text).group(1) if EXPR.fullmatch(text) else text
        uses_status = any(f in text for f in ("always()", "failure()", "cancelled()", "success()"))
        result = bool(self.value(text))
        return result if uses_status else (result and not self.failed)


@dataclass
class JobRun:
    steps: list[StepResult]
    env: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(s.outcome != "failure" for s in self.steps)

    def log(self) -> str:
        return "\n".join(f"--- {s.name}: {s.outcome}\n{s.output}" for s in self.steps)


class Runner:
    def __init__(self, workspace: Path, base_env: dict[str, str], ctx: Context, timeout: float = 1800,
                 skip_actions: tuple[str, ...] = ()):
        self.workspace = workspace
        self.skip_actions = skip_actions
        self.env = dict(base_env)
        self.ctx = ctx
        self.timeout = timeout
        self.results: list[StepResult] = []
        self.files = Path(tempfile.mkdtemp(prefix="local-runner-"))

    def run_job(self, workflow: Path, job_id: str) -> JobRun:
        doc = load(workflow)
        job = doc["jobs"][job_id]
        if "uses" in job:  # a caller of a reusable workflow: its `if`, then the callee's jobs
            if not self.ctx.condition(job.get("if")):
                return JobRun([StepResult(job_id, "skipped", f"if: {job['if']}")], dict(self.env))
            self.ctx.inputs = {k: self.ctx.render(v) for k, v in job.get("with", {}).items()}
            callee = self.workspace / job["uses"]
            for callee_job in load(callee)["jobs"]:
                self.run_job(callee, callee_job)
            return JobRun(self.results, dict(self.env))
        if not self.ctx.condition(job.get("if")):
            return JobRun([StepResult(job_id, "skipped", f"if: {job['if']}")], dict(self.env))
        for scope in (doc.get("env", {}), job.get("env", {})):
            self.env.update({k: self.ctx.render(v) for k, v in scope.items()})
        self._steps(job.get("steps", []), where=job_id)
        return JobRun(self.results, dict(self.env))

    def _steps(self, steps: list[dict[str, Any]], where: str, inputs: dict[str, Any] | None = None) -> None:
        for i, step in enumerate(steps):
            name = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
            if not self.ctx.condition(step.get("if")):
                self.results.append(StepResult(name, "skipped"))
                continue
            uses = step.get("uses")
            if uses:
                if uses in self.skip_actions:
                    self.results.append(StepResult(name, "skipped", "skipped by the test"))
                elif uses.startswith("./"):
                    action = load(self.workspace / uses / "action.yml")
                    defaults = {k: v.get("default", "") for k, v in action.get("inputs", {}).items()}
                    given = {k: self.ctx.render(v) for k, v in step.get("with", {}).items()}
                    saved = self.ctx.inputs
                    self.ctx.inputs = {**defaults, **given}
                    try:
                        self._steps(action["runs"]["steps"], where=uses)
                    finally:
                        self.ctx.inputs = saved
                elif uses.split("@")[0] in ("actions/checkout", "actions/setup-python", "actions/setup-go", "actions/cache"):
                    self.results.append(StepResult(name, "skipped", "marketplace action: not run locally"))
                else:
                    raise NotImplementedError(f"{where}[{i}]: local_runner does not run {uses}")
                continue
            self._run(step, name)

    def _run(self, step: dict[str, Any], name: str) -> None:
        env = dict(self.env)
        env.update({k: self.ctx.render(v) for k, v in step.get("env", {}).items()})
        paths = {kind: self.files / kind for kind in ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT")}
        for kind, path in paths.items():
            path.write_text("")
            env[kind] = str(path)
        env["GITHUB_WORKSPACE"] = str(self.workspace)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.workspace, env=env, capture_output=True, text=True, timeout=self.timeout,
        )
        outcome = "success" if proc.returncode == 0 else "failure"
        self.results.append(StepResult(name, outcome, (proc.stdout + proc.stderr)[-6000:]))
        if outcome == "failure":
            self.ctx.failed = True
        for line in paths["GITHUB_ENV"].read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                self.env[key] = value
        for line in paths["GITHUB_PATH"].read_text().splitlines():
            if line.strip():
                self.env["PATH"] = f"{line.strip()}{os.pathsep}{self.env['PATH']}"
        outputs = dict(line.split("=", 1) for line in paths["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)
        if step.get("id"):
            self.ctx.steps[step["id"]] = {"outputs": outputs, "outcome": outcome}


def run_job(workflow: Path, job_id: str, workspace: Path, env: dict[str, str], *,
            skip_actions: tuple[str, ...] = (), timeout: float = 1800, **ctx: Any) -> JobRun:
    """Run one job of `workflow` (a path inside `workspace`) and return each step's outcome."""
    runner = Runner(workspace, env, Context(**ctx), timeout=timeout, skip_actions=skip_actions)
    return runner.run_job(workflow, job_id)


def project_copy(src: Path, dest: Path, branch: str, prepare: Callable[[Path], Any] | None = None) -> Path:
    """The working tree of `src` (tracked and untracked, minus ignored files) as a fresh
    one-commit git repository on `branch`, sharing src's .venv: what a CI checkout sees."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.invalid"}
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        source = src / rel
        if source.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            if re.fullmatch(r"Pulumi\.[\w-]+\.yaml", rel):  # as committed: the local salt is filtered out
                lines = target.read_text().splitlines(keepends=True)
                target.write_text("".join(line for line in lines if not line.startswith("encryptionsalt:")))
    if prepare is not None:  # edits that belong in the commit
        prepare(dest)
    (dest / ".venv").symlink_to(src / ".venv")
    git = lambda *a: subprocess.run(["git", *a], cwd=dest, env=env, check=True, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", branch)
    (dest / ".git" / "info" / "exclude").write_text(".venv\n")
    git("add", "-A")
    git("commit", "-q", "-m", "checkout")
    return dest
