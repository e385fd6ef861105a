"""The steps that turn `bundle.yml` + its includes into one target's resolved document.

Each step is a module with one function, `apply(state) -> list[Diagnostic]`: it reads and
changes the `LoadState` and returns what it found wrong. `bundles.loader.STEPS` lists them
in order; `run` applies them. README.md in this folder says what each step owns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bundles.mutators.state import LoadState, Variables
from core.diagnostics import Diagnostic

__all__ = ["LoadState", "Step", "Variables", "run"]


class Step(Protocol):
    """A loading step; a module defining `apply` satisfies it."""

    def apply(self, state: LoadState) -> list[Diagnostic]: ...


def run(state: LoadState, steps: Iterable[Step]) -> LoadState:
    """Apply `steps` in order, collecting their diagnostics, until one sets `state.stopped`."""
    for step in steps:
        state.diagnostics.extend(step.apply(state))
        if state.stopped:
            break
    return state
