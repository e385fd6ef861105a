"""Step: every use case a job names is checked (`ml.usecase.load.check`), before anything runs.

Reads the final document and the root: a job's `parameters.use_case` default, and a task's
`use-case` / `use_case` python parameter when it is a literal (not a `{{...}}` reference);
changes nothing. An unknown use case is an error at the parameter's line; a known one's
problems are reported in its own files (`usecases/<name>/usecase.yml:<line>`, `params.yaml`).
"""

from __future__ import annotations

from pathlib import Path

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic
from core.errors import did_you_mean

KEYS = ("use_case", "use-case")


def _named(resources: dict) -> list[tuple[str, tuple]]:
    """(use case name, path in the document) for each use case the jobs name."""
    jobs = resources.get("jobs") if isinstance(resources.get("jobs"), dict) else {}
    found: list[tuple[str, tuple]] = []
    for jkey, job in jobs.items():
        if not isinstance(job, dict):
            continue
        params = job.get("parameters") if isinstance(job.get("parameters"), dict) else {}
        for key in KEYS:
            if isinstance(params.get(key), str):
                found.append((params[key], ("resources", "jobs", jkey, "parameters", key)))
        tasks = job.get("tasks") if isinstance(job.get("tasks"), dict) else {}
        for tkey, task in tasks.items():
            entry = task.get("python") if isinstance(task, dict) else None
            args = entry.get("parameters") if isinstance(entry, dict) else None
            for key in KEYS if isinstance(args, dict) else ():
                value = args.get(key)
                if isinstance(value, str) and value and "{{" not in value:
                    found.append((value, ("resources", "jobs", jkey, "tasks", tkey, "python", "parameters", key)))
    return found


def apply(state: LoadState) -> list[Diagnostic]:
    named = _named(state.resources)
    if not named:
        return []
    from ml.usecase import load

    out: list[Diagnostic] = []
    known = load.available(Path(state.root))
    checked: set[str] = set()
    for name, path in named:
        if name not in known:
            where = f"{load.FOLDER}/{name}/{load.DECLARATION}"
            out.append(Diagnostic("error", f"unknown use case {name!r}: no {where}{did_you_mean(name, known)}",
                                  state.doc.loc(path)))
        elif name not in checked:
            checked.add(name)
            out.extend(load.check(Path(state.root), name))
    return out
