"""The one root of every user-facing failure.

Raise a `ConveyorError` (or a subclass) when the user can act on the message: bad
input, a missing environment, a server that said no. Every CLI prints it as one line
and exits non-zero (`core.cli.guarded`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConveyorError(Exception):
    """A failure the user can act on; `str(exc)` is the whole message.

    `exit_code` is what a CLI exits with; `details()` are extra lines printed before the
    message (for example every diagnostic of an invalid bundle).
    """

    exit_code: int = 1

    def details(self) -> list[str]:
        return []


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a close match exists, else ``: the tail of an "unknown name" message."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
