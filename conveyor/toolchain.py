"""The environment a `pulumi` invocation needs: offline, file backend, passphrase secrets."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from conveyor.paths import state_dir


def passphrase_file(home: Path | None = None) -> Path:
    """A per-project random passphrase, created once; it never leaves `.conveyor/`."""
    home = home or state_dir()
    path = home / "secrets" / "pulumi-passphrase"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path


def pulumi_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for pulumi: caller's values win, offline defaults fill the gaps."""
    env = dict(os.environ if base is None else base)
    home = state_dir()
    (home / "pulumi").mkdir(parents=True, exist_ok=True)
    env.setdefault("PULUMI_BACKEND_URL", f"file://{home / 'pulumi'}")
    env.setdefault("PULUMI_HOME", str(home / "pulumi-home"))
    if "PULUMI_CONFIG_PASSPHRASE" not in env:
        env.setdefault("PULUMI_CONFIG_PASSPHRASE_FILE", str(passphrase_file(home)))
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    env.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    env.setdefault("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", "true")
    env.setdefault("PULUMI_SKIP_CONFIRMATIONS", "true")
    env.setdefault("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true")
    env.setdefault("CONVEYOR_HOME", str(home))
    return env
