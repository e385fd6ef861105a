"""`conveyor init`: a new use case (`use-case <name>`) or a new project (`project <dir>`) from the
shipped templates (copier), ready to validate and train.

The use-case template (`conveyor/templates/use_case/`) writes `usecases/<name>/` (usecase.yml,
params.yaml, features.py, model.py, a 600-row sample CSV) and `resources/<name>.yml`
(experiment, registered model, `<name>_training_job`) into the project. The project template
(`conveyor/templates/project/`) writes bundle.yml, the Pulumi project and its dev / staging /
prod stacks, `usecases/` and a README into a new directory, then one use case into it.
Answers come from the flags; what a flag leaves out is asked on a terminal, or takes the
template's default with `--defaults` (and whenever stdin is not a terminal, as in CI). Bad
answers are refused before anything is written: one line, exit code 2.

Each render leaves its answers next to what it wrote (`.copier-answers.yml` of the project,
`usecases/<name>/.copier-answers.yml` of a use case), naming the template as a git repository
(`template_repo`: the shipped template, committed and tagged per version under
$CONVEYOR_TEMPLATES_DIR), so `copier update` in the project brings a newer template in.
"""

from __future__ import annotations

import fcntl
import keyword
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import typer

from core.errors import ConveyorError
from core.paths import templates_dir

TEMPLATES = Path(__file__).resolve().parent / "templates"
PROJECT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
TASKS = ("binary_classification", "regression")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# Columns of the template's sample dataset: the entity key and the label must not take their names.
SAMPLE_COLUMNS = ("row_id", "event_time", "amount", "quantity", "segment", "amount_per_item")

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Start a use case or a project from the templates (copier).")


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("conveyor")
    except PackageNotFoundError:
        return "0.0.0"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "conveyor", "GIT_AUTHOR_EMAIL": "conveyor@localhost",
           "GIT_COMMITTER_NAME": "conveyor", "GIT_COMMITTER_EMAIL": "conveyor@localhost"}
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InitError(f"template repository {repo}: git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def template_repo(kind: str) -> Path:
    """The shipped template `kind` (`use_case`, `project`) as a git repository copier can update from.

    copier only updates from a git-tracked template, and the installed one is a folder of the
    package. So it is mirrored into `templates_dir()/<kind>`: when its files differ from the
    mirror's last commit they are committed and tagged `v<conveyor version>` (`.post<n>` for a
    later change within one version), which `copier update` takes as the newest template."""
    repo = templates_dir() / kind
    repo.mkdir(parents=True, exist_ok=True)
    with open(repo.parent / f".{kind}.lock", "w") as lock:  # two inits at once sync one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (repo / ".git").is_dir():
            _git(repo, "init", "-q", "-b", "main")
        for entry in repo.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        shutil.copytree(TEMPLATES / kind, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        _git(repo, "add", "-A")
        if _git(repo, "status", "--porcelain"):
            version = _version()
            _git(repo, "commit", "-q", "-m", f"conveyor {version}: {kind} template")
            tags = _git(repo, "tag", "--list", f"v{version}*").split()
            _git(repo, "tag", f"v{version}" if not tags else f"v{version}.post{len(tags)}")
    return repo


def render(root: Path, name: str, answers: dict, defaults: bool, kind: str = "use_case") -> list[Path]:
    """Render template `kind` into `root`; the files written, relative to it. Its answers land in
    `usecases/<name>/.copier-answers.yml` for a use case, `.copier-answers.yml` for a project."""
    import copier

    data = {"name": name, **answers} if kind == "use_case" else dict(answers)
    answers_file = f"usecases/{name}/.copier-answers.yml" if kind == "use_case" else ".copier-answers.yml"
    before = {p for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    try:
        copier.run_copy(str(template_repo(kind)), str(root), data=data, defaults=defaults, answers_file=answers_file,
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


@app.command("project")
def project(
    directory: Path = typer.Argument(..., help="the new project's directory (absent or empty)"),
    name: str | None = typer.Option(None, "--name", help="project name (default: the directory's name)"),
    use_case_name: str = typer.Option("example", "--use-case", help="the first use case's name"),
    task: str | None = typer.Option(None, "--task", help="binary_classification | regression"),
    entity_key: str | None = typer.Option(None, "--entity-key", help="column naming who a row is about"),
    label: str | None = typer.Option(None, "--label", help="column the model predicts"),
    description: str | None = typer.Option(None, "--description", help="one line: what the model predicts"),
    port_base: int | None = typer.Option(None, "--port-base", help="first port of the local environments (default 6100)"),
    defaults: bool = typer.Option(False, "--defaults", help="take the template's default for every answer not given"),
) -> None:
    """Generate a new project (bundle.yml, resources/, stacks, README) with one use case."""
    root = directory.resolve()
    name = name or root.name.lower().replace(" ", "-")
    if not PROJECT_NAME_RE.match(name):
        raise InitError(f"project name {name!r} must match [a-z][a-z0-9_-]* (pass --name)")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InitError(f"{root} exists and is not an empty directory; pick a new one")
    if port_base is not None and not 1024 <= port_base <= 65000:
        raise InitError(f"--port-base {port_base} must be between 1024 and 65000")
    check_answers(root, use_case_name, task, entity_key, label)
    ask = defaults or not sys.stdin.isatty()
    answers = {"project_name": name, "use_case": use_case_name, **({"port_base": port_base} if port_base else {})}
    written = render(root, name, answers, ask, kind="project")
    given = {"task": task, "entity_key": entity_key, "label": label, "description": description}
    written += render(root, use_case_name, {k: v for k, v in given.items() if v is not None}, ask)
    for path in sorted(written):
        typer.echo(f"  created {path}")
    typer.echo(f"project {name!r} created in {root}. Next: cd {root}; git init; conveyor bundle validate -t dev; "
               f"conveyor env up dev; conveyor bundle deploy -t dev; "
               f"conveyor bundle run {use_case_name}_training_job -t dev (README.md)")


@app.command("templates")
def templates() -> None:
    """Mirror the installed templates into their git repositories (what `copier update` reads)."""
    for kind in ("project", "use_case"):
        repo = template_repo(kind)
        typer.echo(f"{kind}: {repo} at {_git(repo, 'describe', '--tags')}")
