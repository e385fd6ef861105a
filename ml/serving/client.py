"""Talking to an endpoint: request bodies from raw transactions, status polling."""

from __future__ import annotations

import time

import httpx
import pandas as pd

REQUEST_COLUMNS = ["transaction_id", "customer_id", "timestamp", "amount", "merchant_category", "card_present",
                   "home_lat", "home_lon", "txn_lat", "txn_lon"]


def request_rows(raw: pd.DataFrame) -> list[dict]:
    """Raw transactions (bronze schema) as JSON-ready `/predict` rows (label dropped)."""
    out = raw[REQUEST_COLUMNS].copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"]).dt.strftime("%Y-%m-%dT%H:%M:%S")
    out["card_present"] = out["card_present"].astype(bool)
    return out.to_dict(orient="records")


def sample_rows(n: int = 200, seed: int = 7, drift: float = 0.0) -> list[dict]:
    from ml.data.generate import generate_transactions

    return request_rows(generate_transactions(n, seed=seed, drift=drift, days=7))


def status(serving_url: str, timeout_s: float = 5.0) -> dict:
    resp = httpx.get(f"{serving_url.rstrip('/')}/status", timeout=timeout_s)
    resp.raise_for_status()
    return resp.json()


def wait_for_revision(serving_url: str, revision: int, timeout_s: float = 120.0, confirmations: int = 3) -> dict:
    """Poll `/status` until the endpoint serves `revision` (a few times in a row: every worker)."""
    deadline = time.monotonic() + timeout_s
    seen, last = 0, {}
    while time.monotonic() < deadline:
        try:
            last = status(serving_url)
        except httpx.HTTPError as exc:
            last = {"error": str(exc)}
        if last.get("revision", -1) >= revision:
            seen += 1
            if seen >= confirmations:
                return last
        else:
            seen = 0
            if last.get("load_error") and (last.get("load_error_revision") or 0) >= revision:
                raise RuntimeError(f"endpoint failed to load revision {revision}: {last['load_error']}")
        time.sleep(0.2)
    raise TimeoutError(f"endpoint at {serving_url} did not reach revision {revision} in {timeout_s:.0f}s (last: {last})")
