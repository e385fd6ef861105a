"""The serving tokens an environment accepts: sha256 hex digests, a JSON list in the file at
$CONVEYOR_SERVING_TOKENS_FILE (written by the env's infra), re-read when the file changes: a new
token works at once, a revoked one stops working within `RECHECK_S` (1 s).

Read by the gate (`gate.py`, in every backend) and by the launcher's proxy (`launch_proxy.py`,
before any backend runs). Standard library only: the launcher imports it without the scoring stack.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

OPEN_PATHS = {"/livez", "/readyz", "/healthz", "/"}  # health and the docs index: GET/HEAD without a token
RECHECK_S = 1.0  # how long an accepted token is taken on the last read of the file (see TokenSet)


def bearer(scope) -> str:
    """The bearer token of an ASGI request's `Authorization` header ('' when there is none)."""
    auth = next((v for k, v in scope.get("headers") or [] if k == b"authorization"), b"").decode("latin-1")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class TokenSet:
    """The accepted digests of one token file.

    A token that is not in the set read last re-checks the file at once, so a newly issued token
    works on its first request. A token that is in it re-checks the file at most every `recheck_s`
    (so a revoked token stops working within that): a stat per request was ~10% of the event
    loop's time at 64 connections, because the syscall hands the GIL to the scoring thread and the
    loop then waits to get it back."""

    def __init__(self, path: Path | str | None, recheck_s: float = RECHECK_S):
        self.path = Path(path) if path else None
        self.recheck_s = recheck_s
        self._mtime: int | None = None
        self._checked = float("-inf")  # time.monotonic() of the last stat
        self._digests: frozenset[str] = frozenset()

    def digests(self) -> frozenset[str]:
        """The accepted digests; none when the file is not set or missing. One stat per call; the
        file is parsed again only when its mtime changes (a rotated token works at once)."""
        if self.path is None:
            return frozenset()
        self._checked = time.monotonic()
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._digests = None, frozenset()
            return self._digests
        if mtime != self._mtime:
            self._digests = frozenset(str(d).lower() for d in json.loads(self.path.read_text() or "[]"))
            self._mtime = mtime
        return self._digests

    def allows(self, token: str) -> bool:
        if not token:
            return False
        digest = hashlib.sha256(token.encode()).hexdigest()
        if digest in self._digests and time.monotonic() - self._checked < self.recheck_s:
            return True  # accepted by the file as of less than `recheck_s` ago
        return digest in self.digests()
