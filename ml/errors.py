"""User-facing errors of ML job tasks, all `core.errors.ConveyorError`s.

A task raises `TaskError` when it cannot go on (missing upstream value, bad argument,
missing input) and `CheckFailed` when a quality gate says no. `tracking_refusal` turns
an MLflow error that came from the tracking server into `TrackingRefused`, so "permission
denied" or "model not found" is one line, while an MLflow error raised by a wrong call in
our own code stays a bug with its traceback.

Each class also keeps the builtin base it had before `ConveyorError` existed, so code that
catches `RuntimeError` keeps working.
"""

from __future__ import annotations

from core.errors import ConveyorError

# MLflow's REST client: every error it raises is the server's answer (or its absence).
_MLFLOW_REST_CLIENT = "mlflow.utils.rest_utils"


class TaskError(ConveyorError, RuntimeError):
    """A task cannot go on; the message is what the user needs to know."""


class CheckFailed(ConveyorError, RuntimeError):
    """A quality gate said no (data or model validation); the task exits non-zero."""


class TrackingRefused(TaskError):
    """The MLflow tracking server or registry said no (permission, not found, unreachable)."""


def tracking_refusal(exc: BaseException) -> TrackingRefused | None:
    """`exc` as a `TrackingRefused` when the tracking server answered with an error or could
    not be reached; None for anything else (including MLflow errors raised client-side)."""
    try:
        from mlflow.exceptions import MlflowException, RestException
    except ImportError:  # pragma: no cover - tasks always have mlflow
        return None
    if not isinstance(exc, MlflowException):
        return None
    if isinstance(exc, RestException) or _raised_in(exc, _MLFLOW_REST_CLIENT):
        return TrackingRefused(str(exc))
    return None


def _raised_in(exc: BaseException, module: str) -> bool:
    """Whether the innermost frame of `exc`'s traceback belongs to `module`."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(module)
