"""The performance targets as data: a measured figure, its bound, and whether it holds.

Benchmarks print these next to their figures instead of asserting them: speed depends on
the machine and its load, so a miss is a finding to read, not a failing test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    what: str  # "1 conn p50 ÷ mlflow p50"
    value: float
    limit: float
    at_most: bool = True  # False: value must be at least `limit`
    unit: str = "×"

    @property
    def ok(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def measured(self) -> str:
        digits = {"×": 2, " ms": 1}.get(self.unit, 0)
        return "n/a" if math.isnan(self.value) else f"{self.value:,.{digits}f}{self.unit}"

    def bound(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {self.limit:g}{self.unit}"

    def verdict(self) -> str:
        return "[green]PASS[/green]" if self.ok else "[red]FAIL[/red]"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")
