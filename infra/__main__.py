"""Pulumi program: one environment per stack (`pulumi up -s dev|staging|prod`)."""

import pulumi

from infra.config import ConfigError, load
from infra.environment import create_environment

try:
    config = load()
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None

create_environment(config).export()
