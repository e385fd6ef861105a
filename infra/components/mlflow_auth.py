"""Env-wide persona roles on top of MLflow basic-auth.

MLflow's basic-auth checks permissions per experiment / registered model, but
lets any authenticated user *create* them. An environment needs one more rule:
a `read` persona (a data scientist in prod) may look at everything and change
nothing. The tracking server of every platform is started with
`authorization_function = infra.components.mlflow_auth:authenticate`, which first
runs MLflow's own basic-auth check and then refuses writes from read-only users.
Roles come from the JSON file named by $CONVEYOR_MLFLOW_ROLES_FILE
(`{"username": "read" | "write"}`), written by Pulumi.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from flask import Response, request

from core import settings

# Requests that are reads although they use POST (MLflow's search / query endpoints).
_READ_POSTS = re.compile(
    r"/(search|search-datasets|get-history-bulk-interval|get-metric-history-bulk|traces/.*/search|"
    r"logged-models/search|graphql|batch-get)$"
)
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@lru_cache(maxsize=4)
def _roles(path: str, mtime: float) -> dict[str, str]:
    return json.loads(Path(path).read_text())


def role_of(username: str) -> str:
    path = settings.MLFLOW_ROLES_FILE.get()
    if path is None or not path.exists():
        return "write"
    return _roles(str(path), path.stat().st_mtime).get(username, "read")


def is_write(method: str, path: str) -> bool:
    if method in _SAFE_METHODS:
        return False
    return not (method == "POST" and _READ_POSTS.search(path))


def authenticate():
    """MLflow's basic-auth, then: read-only users get 403 on anything that writes."""
    from mlflow.server.auth import authenticate_request_basic_auth

    result = authenticate_request_basic_auth()
    if isinstance(result, Response):
        return result
    if is_write(request.method, request.path) and role_of(result.username) == "read":
        body = {
            "error_code": "PERMISSION_DENIED",
            "message": f"user {result.username!r} is read-only in this environment",
        }
        return Response(json.dumps(body), status=403, mimetype="application/json")
    return result
