"""The one error wrapper every command line uses (`conveyor …`, `python -m ml.<task>`, tools).

Contract: a `ConveyorError` becomes its detail lines plus `<prefix>error: <message>` on
stderr and its `exit_code`; Ctrl-C exits 130 with one line; any other exception is a bug
and propagates with its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from core.errors import ConveyorError

F = TypeVar("F", bound=Callable[..., Any])


def report(exc: ConveyorError, prefix: str = "") -> int:
    """Print a user error the one way every CLI prints it; return its exit code."""
    for line in exc.details():
        print(line, file=sys.stderr)
    print(f"{prefix}error: {exc}", file=sys.stderr)
    return exc.exit_code


def guarded(fn: F | None = None, *, prefix: str = "", on_error: Callable[[], None] | None = None) -> Any:
    """Decorate a command: user errors exit with one line, bugs keep their traceback.

    `on_error` runs before a user error is reported (for example: mark an MLflow run failed).
    Raises `SystemExit` with the error's code; the caller's return value passes through.
    """

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except ConveyorError as exc:
                if on_error:
                    on_error()
                raise SystemExit(report(exc, prefix)) from None
            except KeyboardInterrupt:
                print(f"{prefix}error: interrupted", file=sys.stderr)
                raise SystemExit(130) from None

        return wrapper  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap
