"""`conveyor env up|down|refresh|outputs|status <env>`: the Pulumi stacks, for people who prefer one tool.

These wrap the same `pulumi` CLI a user can call directly (`pulumi up -s dev`),
with the project's offline settings applied by `conveyor.toolchain`. A user error is one
`error: …` line and a non-zero exit (`core.cli.guarded`); Pulumi's own messages stay above it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from rich.console import Console
from rich.table import Table

from conveyor.stack import StackError, pulumi_bin, read_outputs
from conveyor.toolchain import ensure_stack, pulumi_env, stack_exists
from core.cli import guarded
from core.errors import ConveyorError
from core.paths import project_dir

app = typer.Typer(no_args_is_help=True)
console = Console()


class EnvCommandError(ConveyorError):
    """A `conveyor env` command that cannot go on; `exit_code` is what the command exits with."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


EnvArg = typer.Argument(..., help="environment (stack) name: dev, staging or prod")


def _known_envs() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir().glob("Pulumi.*.yaml"))


def _check_env(env: str) -> None:
    known = _known_envs()
    if env not in known:
        raise EnvCommandError(f"unknown environment {env!r}: no Pulumi.{env}.yaml (known: {', '.join(known)})", 2)


def _pulumi(*args: str) -> int:
    try:
        binary = pulumi_bin()
    except StackError as exc:
        raise EnvCommandError(str(exc)) from None
    return subprocess.call([binary, *args], cwd=project_dir(), env=pulumi_env())


@app.command()
@guarded
def up(env: str = EnvArg, preview: bool = typer.Option(False, help="only show what would change")) -> None:
    """Provision or update an environment (`pulumi up -s <env>`)."""
    _check_env(env)
    ensure_stack(env)
    rc = _pulumi("preview" if preview else "up", "-s", env, *(() if preview else ("--yes", "--skip-preview")))
    if rc:
        raise EnvCommandError(f"provisioning {env} failed (pulumi exit {rc}); the messages above say why", rc)
    if not preview:
        console.print(f"[green]✓[/] {env} is up — `conveyor env outputs {env}` shows its URLs")


@app.command()
@guarded
def refresh(env: str = EnvArg) -> None:
    """Compare the stack with what is really running (`pulumi refresh -s <env>`)."""
    _check_env(env)
    raise typer.Exit(_pulumi("refresh", "-s", env, "--yes", "--skip-preview"))


@app.command()
@guarded
def down(env: str = EnvArg) -> None:
    """Stop and remove an environment (`pulumi destroy -s <env>`); other envs are untouched."""
    _check_env(env)
    if stack_exists(env) is False:  # unknown (backend unreadable): destroy reports why
        _stop_leftovers(env)
        console.print(f"[green]✓[/] {env} is down (it was never provisioned here, or already destroyed)")
        return
    rc = _pulumi("destroy", "-s", env, "--yes", "--skip-preview")
    if rc:
        raise typer.Exit(rc)
    _stop_leftovers(env)
    console.print(f"[green]✓[/] {env} is down")


def _stop_leftovers(env: str) -> None:
    """A local env's supervisor that outlived its stack (e.g. after an interrupted up) goes too."""
    from infra.local import supervisor
    from infra.local.environment import env_dir

    run_dir = env_dir(env) / "run"
    if supervisor.daemon_pid(run_dir):
        supervisor.stop_daemon(run_dir)


@app.command()
@guarded
def outputs(
    env: str = EnvArg,
    show_secrets: bool = typer.Option(False, "--show-secrets", help="include persona credentials"),
    output: str = typer.Option("text", "-o", "--output", help="text or json"),
) -> None:
    """The environment's stack outputs: URLs, storage, and (with --show-secrets) credentials."""
    _check_env(env)
    try:
        out = read_outputs(env)
    except StackError as exc:
        raise EnvCommandError(str(exc)) from None
    data = out.model_dump()
    if not show_secrets:
        data["credentials"] = {p: {"username": c.username, "password": "(hidden)", "token": "(hidden)"}
                               for p, c in out.credentials.items()}
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table(title=f"environment {env} ({out.platform})", show_header=False)
    table.add_row("tracking (MLflow)", out.tracking_uri)
    table.add_row("serving endpoint", out.serving_url)
    table.add_row("storage", out.storage_uri)
    for persona, cred in data["credentials"].items():
        table.add_row(f"persona {persona}", f"user {cred['username']}  password {cred['password']}  token {cred['token']}")
    console.print(table)
    if not show_secrets:
        console.print(f"credentials: `conveyor env outputs {env} --show-secrets`")


@app.command()
@guarded
def status() -> None:
    """Every environment of the project and whether it is provisioned."""
    table = Table("env", "tracking", "serving", "state")
    for env in _known_envs():
        try:
            out = read_outputs(env)
            table.add_row(env, out.tracking_uri, out.serving_url, "[green]up[/]")
        except StackError:
            table.add_row(env, "-", "-", "[dim]not provisioned[/]")
    console.print(table)
