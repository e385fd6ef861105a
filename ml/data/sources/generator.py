"""Kind `generator`: a function returning the raw rows (synthetic ones, or a packaged dataset it reads).

Its rows are made inside the DVC bronze stage from params.yaml `data` (`UseCase.generate`), so
the data version follows the params; there is nothing to snapshot and no window.
"""

from __future__ import annotations

from ml.data.sources.base import SourceKind


class Generator(SourceKind):
    name = "generator"
    needs = ("function",)
    allows = ("params",)

    def read(self, uc, spec, where):
        return None
