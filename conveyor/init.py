"""`conveyor init use-case <name>`: a new use case from the template, ready to validate and train.

The template (`conveyor/templates/use_case/`, rendered with copier) writes `usecases/<name>/`
(usecase.yml, params.yaml, features.py, model.py, a 600-row sample CSV) and
`resources/<name>.yml` (experiment, registered model, `<name>_training_job`) into the project.
Answers come from the flags; what a flag leaves out is asked on a terminal, or takes the
template's default with `--defaults` (and whenever stdin is not a terminal, as in CI). Bad
answers are refused before anything is written: one line, exit code 2.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path

import typer

from core.errors import ConveyorError

TEMPLATE = Path(__file__).resolve().parent / "templates" / "use_case"
TASKS = ("binary_classification", "regression")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# Columns of the template's sample dataset: the entity key and the label must not take their names.
SAMPLE_COLUMNS = ("row_id", "event_time", "amount", "quantity", "segment", "amount_per_item")

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Start a use case from the template (copier).")


class InitError(ConveyorError):
    """An answer `conveyor init` cannot use, or a use case that already exists."""

    exit_code = 2


def check_answers(root: Path, name: str, task: str | None, entity_key: str | None, label: str | None) -> None:
    """InitError naming the first answer that cannot make a valid use case in the project at `root`."""
    if not NAME_RE.match(name) or keyword.iskeyword(name):
        raise InitError(f"use case name {name!r} must be a lowercase Python identifier ([a-z][a-z0-9_]*, not a keyword)")
    if (root / "usecases" / name).exists() or (root / "resources" / f"{name}.yml").exists():
        raise InitError(f"use case {name!r} already exists (usecases/{name}/ or resources/{name}.yml); pick another name")
    if task is not None and task not in TASKS:
        raise InitError(f"unknown task type {task!r} (one of: {', '.join(TASKS)})")
    for flag, column in (("--entity-key", entity_key), ("--label", label)):
        if column is None:
            continue
        if not COLUMN_RE.match(column):
            raise InitError(f"{flag} {column!r} must be a lowercase identifier ([a-z_][a-z0-9_]*)")
        if column in SAMPLE_COLUMNS:
            raise InitError(f"{flag} {column!r} is a column of the sample dataset ({', '.join(SAMPLE_COLUMNS)})")
    if entity_key is not None and entity_key == label:
        raise InitError(f"--entity-key and --label are both {label!r}; they name different columns")


def render(root: Path, name: str, answers: dict[str, str], defaults: bool) -> list[Path]:
    """Render the template into `root`; the files written, relative to it."""
    import copier

    before = {p for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    try:
        copier.run_copy(str(TEMPLATE), str(root), data={"name": name, **answers}, defaults=defaults,
                        overwrite=False, quiet=True, unsafe=False)
    except (ValueError, copier.errors.CopierError) as exc:  # a prompt's validator said no
        raise InitError(f"copier: {exc}") from exc
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p not in before)


@app.command("use-case")
def use_case(
    name: str = typer.Argument(..., help="the use case's name: a folder under usecases/"),
    task: str | None = typer.Option(None, "--task", help="binary_classification | regression"),
    entity_key: str | None = typer.Option(None, "--entity-key", help="column naming who a row is about"),
    label: str | None = typer.Option(None, "--label", help="column the model predicts"),
    description: str | None = typer.Option(None, "--description", help="one line: what the model predicts"),
    defaults: bool = typer.Option(False, "--defaults", help="take the template's default for every answer not given"),
    project: Path | None = typer.Option(None, "--project-dir", help="the project (default: the current one)"),
) -> None:
    """Generate usecases/<name>/ and resources/<name>.yml from the template."""
    from core.paths import project_dir

    root = (project or project_dir()).resolve()
    check_answers(root, name, task, entity_key, label)
    given = {"task": task, "entity_key": entity_key, "label": label, "description": description}
    answers = {k: v for k, v in given.items() if v is not None}
    written = render(root, name, answers, defaults or not sys.stdin.isatty())
    for path in written:
        typer.echo(f"  created {path}")
    typer.echo(f"use case {name!r} created. Next: conveyor bundle validate -t dev; "
               f"conveyor bundle deploy -t dev; conveyor bundle run {name}_training_job -t dev (docs/use-cases.md)")
