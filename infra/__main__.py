"""Pulumi program: one environment per stack (`pulumi up -s dev|staging|prod`).

Read the stack config, build the environment on the platform it names, export the contract.
"""

import pulumi

from infra.config import ConfigError, load
from infra.platforms import create_environment

try:
    config = load()
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None

create_environment(config).export()
