"""The few Kubernetes API calls `conveyor bundle` makes on a kubernetes env: apply, get, list, delete.

Outside Pulumi on purpose: bundles change many times a day, environments rarely, and a
bundle deploy must not need the env's Pulumi state. The cluster connection is the same one
the stack uses (`conveyor:kubernetes.kubeconfig` / `.context`, else $KUBECONFIG and the
current context). Objects are applied server-side with one field manager, so a re-apply is a
no-op and `kubectl edit` by hand is reported as a conflict we override.
"""

from __future__ import annotations

import os
from typing import Any

from core.errors import ConveyorError

FIELD_MANAGER = "conveyor-bundle"


class KubeError(ConveyorError):
    """The cluster refused or could not be reached (message says which object and why)."""


def _api_errors() -> tuple[type[Exception], ...]:
    """What the client raises when the cluster refuses or cannot be reached; anything else
    raised inside a call is a bug and keeps its traceback."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
    from urllib3.exceptions import HTTPError

    return ApiException, ResourceNotFoundError, ResourceNotUniqueError, HTTPError, OSError


def _reason(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            import json

            return json.loads(body).get("message") or str(body)
        except (ValueError, AttributeError):
            return str(body)
    return str(getattr(exc, "reason", None) or exc)


class KubeApi:
    """A dynamic client on one cluster; `client` may be a ready `kubernetes.client.ApiClient`."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, client: Any = None):
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.dynamic import DynamicClient

        if client is None:
            path = os.path.expanduser(kubeconfig) if kubeconfig else None
            try:
                client = config.new_client_from_config(config_file=path, context=context)
            except (ConfigException, OSError, TypeError) as exc:
                where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
                raise KubeError(f"cannot load the cluster connection from {where}"
                                f"{f' (context {context})' if context else ''}: {exc}") from None
        try:
            self.dynamic = DynamicClient(client)
        except _api_errors() as exc:
            host = getattr(client.configuration, "host", "the cluster")
            raise KubeError(f"cannot reach the Kubernetes API at {host}: {_reason(exc)}") from None

    def _resource(self, api_version: str, kind: str):
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, manifest: dict) -> dict:
        meta = manifest["metadata"]
        try:
            res = self._resource(manifest["apiVersion"], manifest["kind"])
            return res.server_side_apply(body=manifest, name=meta["name"], namespace=meta.get("namespace"),
                                         field_manager=FIELD_MANAGER, force_conflicts=True).to_dict()
        except _api_errors() as exc:
            raise KubeError(f"apply {manifest['kind']} {meta.get('namespace')}/{meta['name']}: {_reason(exc)}") from None

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        except _api_errors() as exc:
            raise KubeError(f"get {kind} {namespace}/{name}: {_reason(exc)}") from None

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        try:
            items = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
            return [item.to_dict() for item in items.items]
        except _api_errors() as exc:
            raise KubeError(f"list {kind} in {namespace} ({label_selector}): {_reason(exc)}") from None

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (with its pods, for Jobs); False when it was already gone."""
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace,
                                                     body={"propagationPolicy": "Background"})
            return True
        except NotFoundError:
            return False
        except _api_errors() as exc:
            raise KubeError(f"delete {kind} {namespace}/{name}: {_reason(exc)}") from None
