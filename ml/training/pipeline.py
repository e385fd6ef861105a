"""The fraud use case's scoring under its old name — kept for the serving side until it reads the use-case contract.

New code uses `ml.training.estimator` with a `UseCase`.
"""

from __future__ import annotations

from ml.training import estimator
from ml.usecase import load_use_case


def evaluate(model, data, threshold: float) -> dict[str, float]:
    """`ml.training.estimator.evaluate` for the fraud use case (kept for the serving side until it reads the contract)."""
    return estimator.evaluate(load_use_case("fraud"), model, data, threshold)
