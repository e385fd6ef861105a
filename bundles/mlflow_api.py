"""The few MLflow REST calls a deploy needs, as the deploying persona (basic auth).

Plain HTTP instead of `MlflowClient` so credentials stay per call (no process-wide
env vars) and every failure becomes one clear line naming the server and the call.
"""

from __future__ import annotations

from typing import Any

import httpx

from bundles.errors import BundleError


class MlflowApi:
    def __init__(self, tracking_uri: str, username: str, password: str, timeout: float = 30.0):
        self.base = tracking_uri.rstrip("/")
        self.username = username
        self.client = httpx.Client(base_url=self.base, auth=(username, password), timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, *, missing_ok: bool = False, exists_ok: bool = False,
              **kwargs: Any) -> dict | None:
        try:
            resp = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BundleError(f"MLflow at {self.base} is unreachable ({exc.__class__.__name__}): is the environment up?") from None
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                code, msg = body.get("error_code", ""), body.get("message", "")
            except ValueError:
                code, msg = "", resp.text.strip()[:200]
            if missing_ok and code == "RESOURCE_DOES_NOT_EXIST":
                return None
            if exists_ok and code == "RESOURCE_ALREADY_EXISTS":
                return None
            if resp.status_code == 401:
                raise BundleError(f"MLflow at {self.base} rejected the credentials of user {self.username!r} (401)")
            if resp.status_code == 403:
                raise BundleError(f"user {self.username!r} may not {method} {path} on {self.base} (403 permission denied)")
            raise BundleError(f"MLflow {method} {path} failed ({resp.status_code} {code}): {msg}")
        return resp.json() if resp.content else {}

    # experiments
    def experiment_by_name(self, name: str) -> dict | None:
        got = self._call("GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}, missing_ok=True)
        return got["experiment"] if got else None

    def experiment(self, experiment_id: str) -> dict | None:
        got = self._call("GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id}, missing_ok=True)
        return got["experiment"] if got else None

    def create_experiment(self, name: str, tags: dict[str, str]) -> str:
        body = {"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        return self._call("POST", "/api/2.0/mlflow/experiments/create", json=body)["experiment_id"]

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._call("POST", "/api/2.0/mlflow/experiments/update", json={"experiment_id": experiment_id, "new_name": new_name})

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._call("POST", "/api/2.0/mlflow/experiments/set-experiment-tag",
                   json={"experiment_id": experiment_id, "key": key, "value": value})

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("POST", "/api/2.0/mlflow/experiments/delete", json={"experiment_id": experiment_id}, missing_ok=True)

    def restore_experiment(self, experiment_id: str) -> None:
        self._call("POST", "/api/2.0/mlflow/experiments/restore", json={"experiment_id": experiment_id})

    # registered models
    def registered_model(self, name: str) -> dict | None:
        got = self._call("GET", "/api/2.0/mlflow/registered-models/get", params={"name": name}, missing_ok=True)
        return got["registered_model"] if got else None

    def create_registered_model(self, name: str, description: str | None, tags: dict[str, str]) -> None:
        body: dict[str, Any] = {"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        if description:
            body["description"] = description
        self._call("POST", "/api/2.0/mlflow/registered-models/create", json=body)

    def update_registered_model(self, name: str, description: str) -> None:
        self._call("PATCH", "/api/2.0/mlflow/registered-models/update", json={"name": name, "description": description})

    def rename_registered_model(self, name: str, new_name: str) -> None:
        self._call("POST", "/api/2.0/mlflow/registered-models/rename", json={"name": name, "new_name": new_name})

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("POST", "/api/2.0/mlflow/registered-models/set-tag", json={"name": name, "key": key, "value": value})

    def delete_registered_model(self, name: str) -> None:
        self._call("DELETE", "/api/2.0/mlflow/registered-models/delete", json={"name": name}, missing_ok=True)

    # permissions (MLflow 3 unified per-user grants)
    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        """Set (not add) the user's permission on the resource: grants are not upserts in MLflow."""
        body = {"username": username, "resource_type": resource_type, "resource_id": resource_id, "permission": permission}
        if self._call("POST", "/api/3.0/mlflow/users/permissions/grant", exists_ok=True, json=body) is None:
            self.revoke(username, resource_type, resource_id)
            self._call("POST", "/api/3.0/mlflow/users/permissions/grant", json=body)

    def revoke(self, username: str, resource_type: str, resource_id: str) -> None:
        self._call("POST", "/api/3.0/mlflow/users/permissions/revoke", missing_ok=True, json={
            "username": username, "resource_type": resource_type, "resource_id": resource_id,
        })

    def permission(self, username: str, resource_type: str, resource_id: str) -> str:
        got = self._call("GET", "/api/3.0/mlflow/users/permissions/get", params={
            "username": username, "resource_type": resource_type, "resource_id": resource_id,
        })
        return got["permission"]
