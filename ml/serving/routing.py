"""Which model answers a row: deterministic hashing so A/B and canary splits are sticky."""

from __future__ import annotations

import hashlib


def bucket(key: str) -> float:
    """A stable number in [0, 100) for a routing key (same key → same bucket, every worker)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100.0


def goes_to_challenger(key: str, challenger_percent: float) -> bool:
    return challenger_percent > 0 and bucket(key) < challenger_percent
