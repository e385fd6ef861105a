"""Find, read and check a use case; every problem is a `Diagnostic` with the file:line at fault.

`check(root, name)` is what `conveyor bundle validate` runs (the `check_use_cases` step): the
declaration's schema, its cross references (a label that is not a column), the functions it
names (found in their source files, nothing is imported), a file source's columns against the
declaration, and the gates of its params.yaml. `load_use_case(name)` is what a task runs: the
same reading of usecase.yml, then the code is imported as it is used. A task finds use cases
in the `usecases` package it imports (`ml.code`): in a job run, the deployed code's, so
usecase.yml, params.yaml and the use case's code are all the deployed version.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from pydantic import ValidationError

from core import settings
from core.diagnostics import Diagnostic
from core.errors import did_you_mean
from core.source import Located, load_yaml
from ml.code import package_dir
from ml.usecase.contract import TASKS, UseCaseSpec
from ml.usecase.metrics import TASK_METRICS
from ml.usecase.usecase import UseCase, UseCaseError

FOLDER = "usecases"
DECLARATION = "usecase.yml"
DEFAULTS = "defaults.yml"  # project-wide: which use case a task without --use-case works on

__all__ = ["UseCaseError", "UseCaseInvalid", "available", "check", "configured_default", "default_name", "gate_problem", "load_use_case",
           "read"]


class UseCaseInvalid(UseCaseError):
    """usecase.yml does not hold; carries each problem as `file:line: message` (`details()`)."""

    def __init__(self, name: str, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"use case {name!r} is invalid: {len(errors)} error(s)")

    def details(self) -> list[str]:
        return [d.render() for d in self.diagnostics]


def folder(root: Path | None = None) -> Path:
    """`<root>/usecases` (`bundle validate`: the checkout being validated); without `root`, where
    the `usecases` package is imported from: in a job run, the deployed code, never a checkout."""
    if root is not None:
        return Path(root) / FOLDER
    return package_dir(FOLDER)


def available(root: Path | None = None) -> list[str]:
    base = folder(root)
    return sorted(p.parent.name for p in base.glob(f"*/{DECLARATION}")) if base.is_dir() else []


def configured_default(root: Path | None = None) -> str | None:
    """`default_use_case` of `usecases/defaults.yml`, or None when the file or the key is absent."""
    path = folder(root) / DEFAULTS
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UseCaseError(f"{path}: not valid YAML: {exc}") from None
    value = data.get("default_use_case") if isinstance(data, dict) else None
    if value is not None and not isinstance(value, str):
        raise UseCaseError(f"{path}: default_use_case must be a use case name, not {value!r}")
    return value or None


def default_name(root: Path | None = None) -> str:
    """The use case of a task called without `--use-case`: $CONVEYOR_USE_CASE, else
    `default_use_case` in `usecases/defaults.yml`, else the project's only use case;
    UseCaseError when none of them decides."""
    given = settings.USE_CASE.get() or configured_default(root)
    if given:
        return given
    names = available(root)
    if len(names) == 1:
        return names[0]
    raise UseCaseError(f"pass --use-case (or set {settings.USE_CASE.name}, or default_use_case in "
                       f"{FOLDER}/{DEFAULTS}): the project has "
                       + (f"use cases {', '.join(names)}" if names else f"no use case under {folder(root)}"))


def gate_problem(task: str, gate: str) -> str | None:
    """Why `min_<metric>` / `max_<metric>` is not a gate of `task`, or None."""
    bound, _, metric = gate.partition("_")
    known = TASK_METRICS[task]
    if metric not in known.names:
        return f"{gate}: {metric!r} is not a {task} metric ({', '.join(known.names)}){did_you_mean(metric, known.names)}"
    wanted = "min" if metric in known.higher_is_better else "max"
    if bound != wanted:
        return f"{gate}: {metric} is {known.better(metric)}-is-better; use {wanted}_{gate.partition('_')[2]}"
    return None


def _message(err: dict) -> str:
    if err["type"] == "literal_error" and err["loc"] and err["loc"][-1] == "task":
        return f"unknown task type {err['input']!r} (one of: {', '.join(TASKS)}){did_you_mean(str(err['input']), TASKS)}"
    if err["type"] == "extra_forbidden":
        return f"unknown key {err['loc'][-1]!r}"
    return err["msg"].removeprefix("Value error, ")


def _cross_checks(spec: UseCaseSpec) -> list[tuple[tuple, str]]:
    """(path, message) for each reference between keys that does not hold."""
    out: list[tuple[tuple, str]] = []
    d = spec.dataset
    columns = d.columns
    for role in ("id", "label", "entity_key", "timestamp"):
        name = getattr(d, role)
        if name is not None and name not in columns:
            out.append((("dataset", role), f"dataset.{role} {name!r} is not a declared column{did_you_mean(name, columns)}"))
    if d.timestamp in columns and columns[d.timestamp].type != "datetime":
        out.append((("dataset", "timestamp"), f"dataset.timestamp {d.timestamp!r} must be a datetime column"))
    for i, col in enumerate(spec.features.request):
        if col not in columns:
            out.append((("features", "request", i), f"features.request: {col!r} is not a declared column{did_you_mean(col, columns)}"))
    if d.label in columns:
        if d.label in spec.features.columns or d.label in spec.features.request:
            out.append((("dataset", "label"), f"the label {d.label!r} may not be a feature or a request column"))
        label = columns[d.label]
        if spec.task == "binary_classification" and label.values is not None and len(label.values) != 2:
            out.append((("dataset", "columns", d.label), f"a binary_classification label has two values, not {label.values}"))
        if spec.task == "regression" and label.type not in ("int", "float"):
            out.append((("dataset", "columns", d.label), f"a regression label is an int or float column, not {label.type}"))
    known = TASK_METRICS[spec.task].names
    for i, metric in enumerate(spec.validation.compared or []):
        if metric not in known:
            out.append((("validation", "compared", i), f"{metric!r} is not a {spec.task} metric ({', '.join(known)})"))
    gold = {*columns, *spec.features.columns}
    sliced = spec.validation.slice_column
    if sliced is not None and sliced not in gold:
        out.append((("validation", "slice_column"), f"slice column {sliced!r} is neither a dataset nor a feature column"))
    from ml.data import sources  # each source kind checks its own keys

    for where, source in _sources(spec):
        out += [((*where, *path), msg) for path, msg in sources.problems(source, columns, d.timestamp)]
    return out


def _sources(spec: UseCaseSpec) -> list[tuple[tuple, object]]:
    """(path in usecase.yml, source) of the default source and each target's own."""
    return [(("source",), spec.source), *((("source", "targets", t), s) for t, s in spec.source.targets.items())]


def read(path: Path, display: str) -> tuple[UseCaseSpec | None, Located | None, list[Diagnostic]]:
    """usecase.yml at `path` (shown as `display`) as a spec, with its locations and problems."""
    doc, diags = load_yaml(path, display)
    if doc is None:
        return None, None, diags
    try:
        spec = UseCaseSpec.model_validate(doc.data)
    except ValidationError as exc:
        return None, doc, [Diagnostic("error", _message(e), doc.loc(tuple(e["loc"]))) for e in exc.errors()]
    problems = [Diagnostic("error", msg, doc.loc(where)) for where, msg in _cross_checks(spec)]
    if spec.name != path.parent.name:
        problems.append(Diagnostic("error", f"name {spec.name!r} differs from its folder {path.parent.name!r}", doc.loc(("name",))))
    return (None if problems else spec), doc, problems


def load_use_case(name: str | None = None, root: Path | None = None) -> UseCase:
    """The use case `name` (default: `default_name()`); UseCaseInvalid lists what is wrong."""
    name = name or default_name(root)
    base = folder(root)
    path = base / name / DECLARATION
    if not path.is_file():
        names = available(root)
        raise UseCaseError(f"unknown use case {name!r}: no {path}{did_you_mean(name, names)}"
                           + (f" (known: {', '.join(names)})" if names else ""))
    spec, _, diags = read(path, str(path))
    if spec is None:
        raise UseCaseInvalid(name, diags)
    return UseCase(spec=spec, dir=path.parent)


# --- the checks `bundle validate` adds (nothing of the use case is imported) --------------------

def _defines(root: Path, ref: str) -> str | None:
    """Why `package.module:name` cannot be found in the project's sources, or None."""
    module, _, name = ref.partition(":")
    base = root.joinpath(*module.split("."))
    source = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    if source is None:
        if (root / module.split(".")[0]).is_dir():
            return f"module {module!r} not found in the project"
        return None if importlib.util.find_spec(module.split(".")[0]) else f"module {module!r} not found"
    try:
        tree = ast.parse(source.read_text(), str(source))
    except SyntaxError as exc:
        return f"{source.relative_to(root)}:{exc.lineno}: syntax error"
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return None if name in names else f"{module} defines no {name!r}{did_you_mean(name, names)}"


def _source_columns(path: Path) -> list[str]:
    if path.suffix == ".csv":
        import csv

        with path.open(newline="") as fh:
            return next(csv.reader(fh), [])
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _check_source(root: Path, uc: UseCase, doc: Located) -> list[Diagnostic]:
    """A file/partitions source in the project: its files exist and hold the declared columns.
    Sources elsewhere ({storage}/…, s3://, SQL) are known only to a run in its env."""
    out = []
    for where, source in _sources(uc.spec):
        path = source.path
        if source.kind not in ("file", "partitions") or not path or "://" in path or path.startswith("{") \
                or Path(path).is_absolute():
            continue
        loc = doc.loc((*where, "path"))
        files = uc.source_files(root, source)
        if not files:
            out.append(Diagnostic("error", f"source.path {path!r}: no parquet/csv file there", loc))
            continue
        for file in files[:1] if source.kind == "file" else files:
            try:
                found = _source_columns(file)
            except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors
                out.append(Diagnostic("error", f"cannot read {file.relative_to(root)}: {exc}", loc))
                continue
            missing = [c for c in uc.raw_columns if c not in found]
            extra = [c for c in found if c not in uc.raw_columns]
            if missing or extra:
                what = "; ".join(s for s in (f"declared but missing {missing}" if missing else "",
                                             f"not declared {extra}" if extra else "") if s)
                out.append(Diagnostic("error", f"{file.relative_to(root)} does not match dataset.columns: {what}", loc))
    return out


def _check_params(root: Path, uc: UseCase, display: str) -> list[Diagnostic]:
    from ml.config import Params

    doc, diags = load_yaml(uc.params_file, display)
    if doc is None:
        return diags
    try:
        params = Params.model_validate(doc.data)
    except ValidationError as exc:
        return [Diagnostic("error", _message(e), doc.loc(tuple(e["loc"]))) for e in exc.errors()]
    out = []
    mv = params.model_validation
    for key in mv.model_extra or {}:
        problem = gate_problem(uc.task, key.replace("_slice_", "_", 1))
        if problem:
            out.append(Diagnostic("error", problem, doc.loc(("model_validation", key))))
    dp = params.deployment
    for path, metric in ([(("deployment", "primary_metric"), dp.primary_metric)]
                         + [(("deployment", "baseline", m), m) for m in dp.baseline]):
        if metric is not None and metric not in uc.metrics.names:
            out.append(Diagnostic("error", f"{metric!r} is not a {uc.task} metric ({', '.join(uc.metrics.names)})",
                                  doc.loc(path)))
    return out


def check(root: Path, name: str) -> list[Diagnostic]:
    """Every problem of use case `name` of the project at `root`, located in its files."""
    rel = f"{FOLDER}/{name}"
    spec, doc, diags = read(root / rel / DECLARATION, f"{rel}/{DECLARATION}")
    if spec is None:
        return diags
    uc = UseCase(spec=spec, dir=root / rel)
    refs = [(("features", "function"), spec.features.function), (("features", "array_function"), spec.features.array_function),
            (("model", "factory"), spec.model.factory),
            (("source", "function"), spec.source.function), (("source", "params"), spec.source.params),
            (("model", "params"), spec.model.params), (("expectations",), spec.expectations)]
    for path, ref in refs:
        problem = _defines(root, ref) if ref else None
        if problem:
            diags.append(Diagnostic("error", f"{'.'.join(path)}: {problem}", doc.loc(path)))
    diags += _check_source(root, uc, doc)
    if uc.params_file.is_file():
        diags += _check_params(root, uc, f"{rel}/params.yaml")
    else:
        diags.append(Diagnostic("error", f"no params.yaml next to {DECLARATION}", doc.loc(())))
    return diags

