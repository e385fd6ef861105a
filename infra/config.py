"""Stack config (`conveyor:*` in Pulumi.<env>.yaml), read once into typed objects.

Every mistake is reported as one line naming the config key, e.g.
`conveyor:ports.serving: port 5101 is already used by conveyor:ports.tracking`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.contract import PERSONAS_REQUIRED
from core.errors import ConveyorError
from core.paths import project_dir
from infra import platforms

Role = Literal["read", "write"]
Permission = Literal["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"]


class ConfigError(ConveyorError, ValueError):
    """A stack config mistake; the message starts with the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ports(_Strict):
    tracking: int = Field(ge=1024, le=65535)
    serving: int = Field(ge=1024, le=65535)


class StorageConfig(_Strict):
    root: str | None = Field(None, description="directory for this env's storage; default .conveyor/envs/<env>/storage")
    retain_on_destroy: bool = Field(False, description="keep data (runs, models, tables) when the env is destroyed")


class Persona(_Strict):
    role: Role
    description: str = ""


class AccessConfig(_Strict):
    default_permission: Permission = Field(
        "READ", description="MLflow permission every authenticated user has on resources it did not create"
    )
    personas: dict[str, Persona]

    @field_validator("personas")
    @classmethod
    def _required_personas(cls, personas: dict[str, Persona]) -> dict[str, Persona]:
        missing = [p for p in PERSONAS_REQUIRED if p not in personas]
        if missing:
            raise ValueError(f"missing persona(s): {', '.join(missing)} (required: {', '.join(PERSONAS_REQUIRED)})")
        return personas


class ServingConfig(_Strict):
    workers: int = Field(1, ge=1, le=16)


class TrackingConfig(_Strict):
    """The database behind the env's MLflow (tracking store and basic-auth users)."""

    database: Literal["sqlite", "postgresql"] = Field(
        "sqlite", description="sqlite: files in the env's storage; postgresql: a PostgreSQL server the platform runs"
    )
    port: int | None = Field(None, ge=1024, le=65535, description="the PostgreSQL server's port (127.0.0.1)")


class StackConfig(_Strict):
    """Everything one environment is built from, independent of platform."""

    env: str
    platform: str = Field("local", description="a name registered in infra.platforms.PLATFORMS")
    ports: Ports
    storage: StorageConfig = StorageConfig()
    access: AccessConfig
    serving: ServingConfig = ServingConfig()
    tracking: TrackingConfig = TrackingConfig()
    kubernetes: dict[str, Any] = Field(default_factory=dict, description="platform settings, read by infra/kubernetes")

    @field_validator("platform")
    @classmethod
    def _registered_platform(cls, platform: str) -> str:
        if platform not in platforms.PLATFORMS:
            quoted = [repr(name) for name in platforms.names()]
            expected = " or ".join(filter(None, [", ".join(quoted[:-1]), quoted[-1]]))
            raise ValueError(f"Input should be {expected}, got {platform!r}")
        return platform


def _key_of(loc: tuple) -> str:
    return "conveyor:" + ".".join(str(part) for part in loc)


def parse(env: str, raw: dict[str, Any]) -> StackConfig:
    """Validate raw `conveyor:*` values; raise ConfigError naming the first bad key."""
    try:
        cfg = StackConfig.model_validate({"env": env, **raw})
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "value_error":
            msg = str(err["ctx"]["error"])
        raise ConfigError(f"{_key_of(err['loc'])}: {msg}") from None
    ports = _ports(cfg.model_dump())
    for key, port in ports.items():
        earlier = next((k for k, p in ports.items() if p == port), key)
        if earlier != key:
            raise ConfigError(f"conveyor:{key}: port {port} is already used by conveyor:{earlier}")
    if cfg.tracking.database == "postgresql" and cfg.platform == "local" and cfg.tracking.port is None:
        raise ConfigError("conveyor:tracking.port: required when conveyor:tracking.database is postgresql")
    return cfg


def _ports(raw: dict[str, Any]) -> dict[str, int]:
    """Every port a stack's config claims, by key (`ports.tracking`, `tracking.port`, ...)."""
    claimed = {f"ports.{name}": port for name, port in (raw.get("ports") or {}).items()}
    tracking = raw.get("tracking") or {}
    if tracking.get("database") == "postgresql" and tracking.get("port"):
        claimed["tracking.port"] = tracking["port"]
    return claimed


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `conveyor:*` values of a Pulumi.<stack>.yaml, without the namespace prefix."""
    data = yaml.safe_load(path.read_text()) or {}
    config = data.get("config") or {}
    return {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("conveyor:")}


def secure_as_placeholders(value: Any, stand_in: str = "placeholder-secret") -> Any:
    """A stack file's `secure:` values (encrypted; reading them needs the passphrase) replaced
    by `stand_in`, keeping the shape: for readers that never need the secrets themselves."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return stand_in
        return {k: secure_as_placeholders(v, stand_in) for k, v in value.items()}
    if isinstance(value, list):
        return [secure_as_placeholders(v, stand_in) for v in value]
    return value


def check_no_collisions(cfg: StackConfig, project_dir: Path) -> None:
    """Ports and storage of this env must not collide with any other stack of the project."""
    mine = _ports(cfg.model_dump())
    for other in sorted(project_dir.glob("Pulumi.*.yaml")):
        other_env = other.name[len("Pulumi."):-len(".yaml")]
        if other_env == cfg.env:
            continue
        ports = _ports(read_stack_file(other))
        for name, port in mine.items():
            for other_name, other_port in ports.items():
                if port == other_port:
                    raise ConfigError(
                        f"conveyor:{name}: port {port} collides with conveyor:{other_name} "
                        f"of stack {other_env!r} ({other.name})"
                    )
        other_root = (read_stack_file(other).get("storage") or {}).get("root")
        if cfg.storage.root and other_root and Path(cfg.storage.root) == Path(other_root):
            raise ConfigError(f"conveyor:storage.root: {cfg.storage.root} is also the storage of stack {other_env!r}")


def load() -> StackConfig:
    """Read the current stack's config through Pulumi (inside a Pulumi program only)."""
    import pulumi

    config = pulumi.Config("conveyor")
    raw: dict[str, Any] = {}
    for key in StackConfig.model_fields:
        if key == "env":
            continue
        annotation = StackConfig.model_fields[key].annotation
        scalar = annotation is str or "Literal" in str(annotation)  # plain strings, not YAML objects
        value = config.get(key) if scalar else config.get_object(key)
        if value is not None:
            raw[key] = value
    # pulumi.Config ignores keys nobody asks for: report typos in the stack file instead.
    project = project_dir()
    stack_file = project / f"Pulumi.{pulumi.get_stack()}.yaml"
    if stack_file.exists():
        for key in read_stack_file(stack_file):
            if key not in StackConfig.model_fields or key == "env":
                raise ConfigError(f"conveyor:{key}: unknown key (in {stack_file.name})")
    cfg = parse(pulumi.get_stack(), raw)
    check_no_collisions(cfg, project)
    return cfg
