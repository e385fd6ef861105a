"""The environment a `pulumi` invocation needs: offline, file backend, passphrase secrets.

Everything it keeps under the state dir is owner-only: the state dir, the backend, Pulumi's
home and the passphrase (dirs 0700, files 0600); `pulumi` itself runs with umask 077.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from core import settings
from core.cli import guarded
from core.errors import ConveyorError
from core.files import PRIVATE_FILE, private_dir
from core.paths import state_dir


class ToolchainError(ConveyorError):
    """The pulumi CLI is missing, or a stack cannot be created in the local backend."""


def passphrase_file(home: Path | None = None) -> Path:
    """A per-project random passphrase, created once; it never leaves `.conveyor/`."""
    home = home or state_dir()
    path = home / "secrets" / "pulumi-passphrase"
    private_dir(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    else:
        path.chmod(PRIVATE_FILE)  # a passphrase written before it was kept private
    return path


def pulumi_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for pulumi: caller's values win, offline defaults fill the gaps."""
    env = dict(os.environ if base is None else base)
    if not env.get("PULUMI_CONFIG_PASSPHRASE"):
        env.pop("PULUMI_CONFIG_PASSPHRASE", None)  # an unset CI secret arrives as ""
    home = state_dir()
    for private in (home, home / "pulumi", home / "pulumi-home"):
        private_dir(private)
    env.setdefault("PULUMI_BACKEND_URL", f"file://{home / 'pulumi'}")
    env.setdefault("PULUMI_HOME", str(home / "pulumi-home"))
    if "PULUMI_CONFIG_PASSPHRASE" not in env:
        env.setdefault("PULUMI_CONFIG_PASSPHRASE_FILE", str(passphrase_file(home)))
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    env.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    env.setdefault("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", "true")
    env.setdefault("PULUMI_SKIP_CONFIRMATIONS", "true")
    env.setdefault("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true")
    env.setdefault(settings.HOME.name, str(home))
    # Pulumi finds its Python plugins (conveyor/plugins.py) next to this interpreter.
    venv_bin = str(Path(sys.executable).parent)
    if (Path(sys.prefix) / "pulumi" / "bin" / "pulumi-language-python").exists():
        # Our CLI build has the plugins beside it; don't let PATH lookups warn about them.
        env.setdefault("PULUMI_IGNORE_AMBIENT_PLUGINS", "true")
    if venv_bin not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    return env


def real_pulumi() -> str:
    """The CLI binary `make setup` chose (recorded next to the venv), else one on PATH."""
    import shutil

    override = settings.PULUMI_BIN.get()
    if override:
        return override
    recorded = Path(sys.prefix) / "pulumi-bin"
    if recorded.exists():
        return recorded.read_text().strip()
    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("pulumi", path=folder)
        if found and Path(found).resolve() != me:
            return found
    raise ToolchainError("pulumi CLI not installed: run `make setup`")


@guarded
def exec_pulumi() -> None:
    """`pulumi` inside the venv: the real CLI with the project's offline defaults."""
    binary = real_pulumi()
    env = pulumi_env()
    stack = _stack_arg(sys.argv[1:])
    if stack and sys.argv[1:2] and sys.argv[1] in ("up", "preview", "refresh") and \
            (_project() / f"Pulumi.{stack}.yaml").exists():
        # The stack's config is committed; its state is local: create it on first use.
        ensure_stack(stack)
    os.umask(0o077)  # state, backups and whatever the program's providers write: owner-only
    os.execve(binary, [binary, *sys.argv[1:]], env)


def ensure_stack(stack: str) -> None:
    """Create the stack in the file backend on first use (its config file is committed)."""
    import subprocess

    if stack_exists(stack):
        return
    env = pulumi_env()
    binary = real_pulumi()
    config = _project() / f"Pulumi.{stack}.yaml"
    drop_stale_salt(config)
    init = subprocess.run([binary, "stack", "init", stack, "--secrets-provider", "passphrase", "--non-interactive"],
                          cwd=_project(), env=env, capture_output=True, text=True)
    if init.returncode != 0:
        reason = (init.stderr or init.stdout).strip().removeprefix("error: ")
        hint = ""
        if "passphrase" in reason:
            hint = (f"; {config.name} holds values encrypted with another passphrase: set "
                    "PULUMI_CONFIG_PASSPHRASE to it, or delete its `encryptionsalt:` line and re-set the secrets")
        raise ToolchainError(f"cannot create Pulumi stack {stack!r}: {reason}{hint}")


def stack_exists(stack: str) -> bool | None:
    """Whether the file backend holds the stack; None when the backend cannot be listed."""
    import subprocess

    probe = subprocess.run([real_pulumi(), "stack", "ls", "--json"], cwd=_project(), env=pulumi_env(),
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    return any(s.get("name") == stack for s in _json(probe.stdout))


def drop_stale_salt(config: Path) -> bool:
    """Forget a passphrase salt left by deleted local state (`make demo-clean`, a new clone with
    a copied file). Only a file without `secure:` values: then the salt protects nothing, and
    keeping it makes `stack init` fail with "incorrect passphrase" under the new passphrase."""
    if not config.exists():
        return False
    lines = config.read_text().splitlines(keepends=True)
    if any("secure:" in line for line in lines) or not any(line.startswith("encryptionsalt:") for line in lines):
        return False
    config.write_text("".join(line for line in lines if not line.startswith("encryptionsalt:")))
    return True


def _stack_arg(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg in ("-s", "--stack") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--stack="):
            return arg.split("=", 1)[1]
    return None


def _project() -> Path:
    from core.paths import project_dir

    return project_dir()


def _json(text: str) -> list[dict]:
    import json

    try:
        return json.loads(text or "[]")
    except ValueError:
        return []
