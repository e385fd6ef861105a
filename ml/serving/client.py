"""Talking to an endpoint: request bodies from raw rows of a use case, status polling."""

from __future__ import annotations

import time

import httpx
import pandas as pd

from core import settings
from ml.serving.errors import EndpointNotReady


def _use_case(use_case):
    from ml.serving.schema import for_use_case

    name = use_case if isinstance(use_case, str) else getattr(use_case, "name", None)
    return for_use_case(name or settings.SERVING_USE_CASE.get())


def request_rows(raw: pd.DataFrame, use_case=None) -> list[dict]:
    """Raw rows (the use case's bronze schema) as JSON-ready `/predict` rows: the request
    columns only (label dropped), datetimes in ISO 8601, nulls as None.

    `use_case`: a name or `UseCase` (default: the default endpoint's)."""
    schema = _use_case(use_case)
    declared = schema.use_case.spec.dataset.columns
    out = raw[[c for c in schema.columns if c in raw.columns]].copy()
    for col in out.columns:
        kind = declared[col].type if col in declared else "string"
        if kind == "datetime":
            out[col] = pd.to_datetime(out[col]).dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif kind == "bool":
            out[col] = out[col].astype(bool)
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict(orient="records")


def sample_rows(n: int = 200, seed: int = 7, use_case=None, **knobs) -> list[dict]:
    """`n` request rows of the use case: from its generator (with `knobs`, e.g. `drift=`), else
    sampled from its declared source files."""
    from ml.usecase.usecase import resolve

    uc = _use_case(use_case).use_case
    source = uc.spec.source
    if source.kind == "generator":
        raw = resolve(source.function, f"use case {uc.name!r}: source.function")(rows=n, seed=seed, **knobs)
    else:
        from ml.code import code_root

        files = uc.source_files(code_root())  # the running code's use case files (a job run: the deployed ones)
        if not files:
            raise EndpointNotReady(f"use case {uc.name!r}: no source file at {source.path} to sample requests from")
        raw = pd.concat([pd.read_csv(f) if f.suffix == ".csv" else pd.read_parquet(f) for f in files], ignore_index=True)
        raw = raw.sample(n=n, replace=len(raw) < n, random_state=seed).reset_index(drop=True)
    return request_rows(raw, uc)


def status(serving_url: str, timeout_s: float = 5.0, endpoint: str | None = None, token: str | None = None) -> dict:
    """`/status` of the default endpoint, or `/<endpoint>/status` of a named one (behind the serving token)."""
    path = f"/{endpoint}/status" if endpoint else "/status"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(f"{serving_url.rstrip('/')}{path}", timeout=timeout_s, headers=headers)
    resp.raise_for_status()
    return resp.json()


def wait_for_revision(serving_url: str, revision: int, timeout_s: float = 120.0, confirmations: int = 3,
                      endpoint: str | None = None, token: str | None = None) -> dict:
    """Poll `/status` until the endpoint serves `revision` (a few times in a row: every worker)."""
    deadline = time.monotonic() + timeout_s
    seen, last = 0, {}
    while time.monotonic() < deadline:
        try:
            last = status(serving_url, endpoint=endpoint, token=token)
        except httpx.HTTPError as exc:
            last = {"error": str(exc)}
        if last.get("revision", -1) >= revision:
            seen += 1
            if seen >= confirmations:
                return last
        else:
            seen = 0
            if last.get("load_error") and (last.get("load_error_revision") or 0) >= revision:
                raise EndpointNotReady(f"endpoint failed to load revision {revision}: {last['load_error']}")
        time.sleep(0.2)
    where = f"{serving_url}/{endpoint}" if endpoint else serving_url
    raise EndpointNotReady(f"endpoint at {where} did not reach revision {revision} in {timeout_s:.0f}s (last: {last})")
