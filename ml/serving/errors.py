"""What can go wrong on the serving side, as user-facing errors (`core.errors.ConveyorError`).

A CLI prints any of these as one line; anything else raised by serving code is a bug.
"""

from __future__ import annotations

from core.errors import ConveyorError


class ServingError(ConveyorError):
    """The root of every serving failure the user can act on."""


class NoModelDeployed(ServingError):
    """The endpoint has no champion (or no candidate) yet: answered with 503."""


class DeployError(ServingError):
    """A model did not go live (SLA gate, readiness, canary guard); the message has the reason and figures."""


class EndpointNotReady(ServingError):
    """The endpoint did not load a revision in time, or reported that loading it failed."""


class EndpointSettingsError(ServingError):
    """The bundle's `serving_endpoints` resource is missing or its `rollout` settings are invalid."""


class UnknownRolloutStrategy(ServingError, ValueError):
    """A rollout strategy name no module registered.

    Also a `ValueError`, so a pydantic field validator reports it as a field error.
    """
