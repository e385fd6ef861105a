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


class Overloaded(ServingError):
    """The endpoint is past its capacity: the request is shed at once (503 + Retry-After)."""

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooLarge(ServingError):
    """A request over the endpoint's body-size or rows-per-request limit (413 naming the limit)."""

    def __init__(self, message: str, limit: str, value: int):
        super().__init__(message)
        self.limit, self.value = limit, value
