"""The one root of every user-facing failure.

Raise a `ConveyorError` (or a subclass) when the user can act on the message: bad
input, a missing environment, a server that said no. Every CLI prints it as one line
and exits non-zero (`core.cli.guarded`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """A failure the user can act on; `str(exc)` is the whole message.

    `exit_code` is what a CLI exits with; `details()` are extra lines printed before the
    message (for example every diagnostic of an invalid bundle).
    """

    exit_code: int = 1

    def details(self) -> list[str]:
        return []
