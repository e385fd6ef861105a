"""`shadow`: the challenger scores a copy of every batch off the request path and never answers.

Both answers go to the inference table (`served_by=shadow`), so monitoring compares them.
The challenger stays until promoted or rolled back by hand.
"""

from __future__ import annotations

from typing import Any

from ml.serving.rollouts.base import RolloutStrategy


class Shadow(RolloutStrategy):
    name = "shadow"
    summary = "challenger scores a copy of every request, never answers"
    mirrors = True

    def implied_by(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        """A resource that names a `shadow` model."""
        return {"strategy": self.name} if resource.get("shadow") else None
