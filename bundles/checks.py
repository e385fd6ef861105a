"""Cross-reference checks the type models cannot express: task graphs, references, targets.

They walk the raw (merged, interpolated) tree defensively so they run even when
other parts of the file are malformed — `validate` reports everything at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.diagnostics import Diagnostic
from core.errors import did_you_mean
from core.source import Located

KNOWN_PERSONAS = ("data_scientist", "ml_engineer", "ci")
RUNTIME_REF_RE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


def _deps(task: Any) -> list[tuple[int, str | None, Any]]:
    """(index, upstream task key, outcome) for each depends_on entry that names a task."""
    out = []
    if not isinstance(task, dict) or not isinstance(task.get("depends_on"), list):
        return out
    for i, dep in enumerate(task["depends_on"]):
        if isinstance(dep, str):
            out.append((i, dep, None))
        elif isinstance(dep, dict) and isinstance(dep.get("task"), str):
            out.append((i, dep["task"], dep.get("outcome")))
    return out


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle in `graph` (node -> upstream nodes) as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for up in graph.get(node, []):
            if up not in graph:
                continue
            if state.get(up) == 1:
                return stack[stack.index(up):] + [up]
            if state.get(up) is None:
                found = visit(up)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def upstream_closure(graph: dict[str, list[str]], task: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(task, []))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, []))
    return seen


def _strings(node: Any, path: tuple):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, path + (i,))
    elif isinstance(node, str):
        yield path, node


def _check_job(doc: Located, key: str, job: dict, jobs: dict) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    base = ("resources", "jobs", key)
    tasks = job.get("tasks")
    if not isinstance(tasks, dict):
        return out
    graph: dict[str, list[str]] = {}
    for tkey, task in tasks.items():
        graph[tkey] = []
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$", str(tkey)):
            out.append(Diagnostic("error", f"task key {tkey!r} may only use letters, digits, _ and -", doc.loc(base + ("tasks", tkey))))
        for i, up, outcome in _deps(task):
            loc = doc.loc(base + ("tasks", tkey, "depends_on", i))
            if up not in tasks:
                out.append(Diagnostic(
                    "error", f"task {tkey!r} depends on unknown task {up!r}{did_you_mean(up, tasks)}", loc
                ))
                continue
            if up == tkey:
                out.append(Diagnostic("error", f"task {tkey!r} depends on itself", loc))
                continue
            graph[tkey].append(up)
            if outcome is not None and not (isinstance(tasks[up], dict) and "condition" in tasks[up]):
                out.append(Diagnostic("error", f"`outcome` only applies to condition tasks, and {up!r} is not one", loc))
        if isinstance(task, dict) and isinstance(task.get("run_job"), dict):
            target = task["run_job"].get("job")
            if isinstance(target, str) and target not in jobs:
                out.append(Diagnostic(
                    "error", f"task {tkey!r} runs unknown job {target!r}{did_you_mean(target, jobs)}",
                    doc.loc(base + ("tasks", tkey, "run_job", "job")),
                ))
    cycle = _cycle(graph)
    if cycle:
        out.append(Diagnostic(
            "error", f"cycle in depends_on of job {key!r}: {' -> '.join(reversed(cycle))}",
            doc.loc(base + ("tasks", cycle[0], "depends_on")),
        ))
    params = job.get("parameters") if isinstance(job.get("parameters"), dict) else {}
    for tkey, task in tasks.items():
        ups = upstream_closure(graph, tkey) if not cycle else set(tasks)
        for path, text in _strings(task, ()):
            for ref in RUNTIME_REF_RE.findall(text):
                loc = doc.loc(base + ("tasks", tkey) + path)
                parts = ref.split(".")
                if parts[:2] == ["job", "parameters"] and len(parts) == 3:
                    if parts[2] not in params:
                        out.append(Diagnostic(
                            "error", f"{{{{{ref}}}}}: job {key!r} has no parameter {parts[2]!r}{did_you_mean(parts[2], params)}", loc
                        ))
                elif parts[0] == "tasks" and len(parts) == 4 and parts[2] == "values":
                    if parts[1] not in tasks:
                        out.append(Diagnostic("error", f"{{{{{ref}}}}}: unknown task {parts[1]!r}{did_you_mean(parts[1], tasks)}", loc))
                    elif parts[1] not in ups:
                        out.append(Diagnostic(
                            "error", f"{{{{{ref}}}}}: task {tkey!r} reads a value of {parts[1]!r}, which is not upstream of it (add it to depends_on)", loc
                        ))
                elif ref not in ("job.run_id", "job.name", "job.trigger", "task.name", "bundle.target"):
                    out.append(Diagnostic(
                        "error",
                        f"unknown run-time reference {{{{{ref}}}}} (use job.parameters.<p>, tasks.<task>.values.<key>, job.run_id)",
                        loc,
                    ))
    return out


def _job_cycles(doc: Located, jobs: dict) -> list[Diagnostic]:
    graph: dict[str, list[str]] = {}
    for key, job in jobs.items():
        graph[key] = []
        tasks = job.get("tasks") if isinstance(job, dict) else None
        for task in (tasks or {}).values() if isinstance(tasks, dict) else []:
            if isinstance(task, dict) and isinstance(task.get("run_job"), dict):
                target = task["run_job"].get("job")
                if isinstance(target, str) and target in jobs:
                    graph[key].append(target)
    cycle = _cycle(graph)
    if not cycle:
        return []
    return [Diagnostic("error", f"run_job tasks form a cycle: {' -> '.join(cycle)}", doc.loc(("resources", "jobs", cycle[0])))]


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def _check_modules(doc: Located, root: Path, jobs: dict) -> list[Diagnostic]:
    """Task modules of the project must exist (a typo fails at validate, not at 3 a.m.)."""
    out: list[Diagnostic] = []
    for key, job in jobs.items():
        tasks = job.get("tasks") if isinstance(job, dict) else None
        for tkey, task in (tasks.items() if isinstance(tasks, dict) else []):
            for kind in ("python", "condition"):
                entry = task.get(kind) if isinstance(task, dict) else None
                module = entry.get("module") if isinstance(entry, dict) else None
                if not isinstance(module, str) or not re.match(r"^[A-Za-z_][\w.]*$", module):
                    continue
                top = module.split(".")[0]
                if _module_file(root, module):
                    continue
                loc = doc.loc(("resources", "jobs", key, "tasks", tkey, kind, "module"))
                if (root / top).is_dir():
                    siblings = [p.stem for p in root.joinpath(*module.split(".")[:-1]).glob("*.py")]
                    hint = did_you_mean(module.split(".")[-1], siblings)
                    out.append(Diagnostic("error", f"task {tkey!r}: module {module!r} not found in the project{hint}", loc))
                else:
                    out.append(Diagnostic("warning", f"task {tkey!r}: module {module!r} is not part of the project "
                                                     f"(it must be installed where jobs run)", loc))
    return out


def semantic(doc: Located, target: str, root: Path | None = None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    data = doc.data
    resources = data.get("resources") if isinstance(data.get("resources"), dict) else {}
    jobs = resources.get("jobs") if isinstance(resources.get("jobs"), dict) else {}
    for key, job in jobs.items():
        if isinstance(job, dict):
            out.extend(_check_job(doc, key, job, jobs))
    out.extend(_job_cycles(doc, jobs))
    if root is not None:
        out.extend(_check_modules(doc, root, jobs))

    endpoints = resources.get("serving_endpoints") if isinstance(resources.get("serving_endpoints"), dict) else {}
    monitors = resources.get("monitors") if isinstance(resources.get("monitors"), dict) else {}
    for key, mon in monitors.items():
        if not isinstance(mon, dict):
            continue
        ep = mon.get("endpoint")
        if isinstance(ep, str) and ep not in endpoints:
            out.append(Diagnostic("error", f"monitor {key!r} watches unknown serving endpoint {ep!r}{did_you_mean(ep, endpoints)}",
                                  doc.loc(("resources", "monitors", key, "endpoint"))))
        job = mon.get("retrain_job")
        if isinstance(job, str) and job not in jobs:
            out.append(Diagnostic("error", f"monitor {key!r} triggers unknown job {job!r}{did_you_mean(job, jobs)}",
                                  doc.loc(("resources", "monitors", key, "retrain_job"))))

    for kind in ("experiments", "registered_models"):
        entries = resources.get(kind) if isinstance(resources.get(kind), dict) else {}
        for key, entry in entries.items():
            grants = entry.get("grants") if isinstance(entry, dict) else None
            for i, grant in enumerate(grants if isinstance(grants, list) else []):
                who = grant.get("principal") if isinstance(grant, dict) else None
                if isinstance(who, str) and who not in KNOWN_PERSONAS:
                    out.append(Diagnostic(
                        "warning", f"grant to {who!r}, which is not a standard persona ({', '.join(KNOWN_PERSONAS)}){did_you_mean(who, KNOWN_PERSONAS)}",
                        doc.loc(("resources", kind, key, "grants", i)),
                    ))

    targets = data.get("targets") if isinstance(data.get("targets"), dict) else {}
    for name, tcfg in targets.items():
        if not isinstance(tcfg, dict):
            continue
        if tcfg.get("mode") == "production":
            if not tcfg.get("run_as"):
                out.append(Diagnostic("error", f"production target {name!r} needs `run_as` (the persona that deploys and runs jobs, e.g. ci)",
                                      doc.loc(("targets", name))))
            if not (isinstance(tcfg.get("git"), dict) and tcfg["git"].get("branch")):
                out.append(Diagnostic("warning", f"production target {name!r} sets no `git.branch`: deploys from any branch are accepted",
                                      doc.loc(("targets", name))))
    return out
