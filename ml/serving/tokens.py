"""The serving tokens an environment accepts: sha256 hex digests, a JSON list in the file at
$CONVEYOR_SERVING_TOKENS_FILE (written by the env's infra), re-read when the file changes.

Read by the gate (`gate.py`, in every backend) and by the launcher's proxy (`launch_proxy.py`,
before any backend runs). Standard library only: the launcher imports it without the scoring stack.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

OPEN_PATHS = {"/livez", "/readyz", "/healthz", "/"}  # health and the docs index: GET/HEAD without a token


def bearer(scope) -> str:
    """The bearer token of an ASGI request's `Authorization` header ('' when there is none)."""
    auth = next((v for k, v in scope.get("headers") or [] if k == b"authorization"), b"").decode("latin-1")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class TokenSet:
    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._mtime: int | None = None
        self._digests: frozenset[str] = frozenset()

    def digests(self) -> frozenset[str]:
        """The accepted digests; none when the file is not set or missing. One stat per call; the
        file is parsed again only when its mtime changes (a rotated token works at once)."""
        if self.path is None:
            return frozenset()
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return frozenset()
        if mtime != self._mtime:
            self._digests = frozenset(str(d).lower() for d in json.loads(self.path.read_text() or "[]"))
            self._mtime = mtime
        return self._digests

    def allows(self, token: str) -> bool:
        return bool(token) and hashlib.sha256(token.encode()).hexdigest() in self.digests()
