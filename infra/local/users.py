"""MLflow users of one environment, managed through the tracking server's auth REST API."""

from __future__ import annotations

import time

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

_API = "/api/2.0/mlflow/users"


def _client(props) -> httpx.Client:
    return httpx.Client(base_url=props["tracking_uri"], auth=(props["admin_username"], props["admin_password"]),
                        timeout=30)


def _raise(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {resp.status_code} {resp.text[:300]}")


def upsert_user(client: httpx.Client, username: str, password: str) -> None:
    got = client.get(f"{_API}/get", params={"username": username})
    if got.status_code == 200:
        _raise(client.patch(f"{_API}/update-password", json={"username": username, "password": password}),
               f"update password of {username}")
    else:
        _raise(client.post(f"{_API}/create", json={"username": username, "password": password}),
               f"create user {username}")


def delete_user(client: httpx.Client, username: str) -> None:
    resp = client.request("DELETE", f"{_API}/delete", json={"username": username})
    if resp.status_code not in (200, 404) and "RESOURCE_DOES_NOT_EXIST" not in resp.text:
        _raise(resp, f"delete user {username}")


def wait_admin(client: httpx.Client, timeout: float = 120) -> None:
    """The server answers /health before its auth store has bootstrapped the admin user."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"{_API}/get", params={"username": "conveyor-probe"})
        if resp.status_code != 401 or time.monotonic() > deadline:
            return
        time.sleep(1)


class _MlflowUsersProvider(ResourceProvider):
    def create(self, props):
        with _client(props) as client:
            wait_admin(client)
            for username, password in sorted(props["users"].items()):
                upsert_user(client, username, password)
        return CreateResult(id_=f"{props['tracking_uri']}/users", outs=props)

    def diff(self, _id, olds, news):
        keys = ["users", "tracking_uri", "admin_username", "admin_password"]
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def update(self, _id, olds, news):
        with _client(news) as client:
            wait_admin(client)
            for username in sorted(set(olds["users"]) - set(news["users"])):
                delete_user(client, username)
            for username, password in sorted(news["users"].items()):
                if olds["users"].get(username) != password or olds.get("tracking_uri") != news["tracking_uri"]:
                    upsert_user(client, username, password)
        return UpdateResult(outs=news)

    def delete(self, _id, props):
        try:
            with _client(props) as client:
                for username in sorted(props["users"]):
                    delete_user(client, username)
        except httpx.TransportError:
            pass  # the tracking server is already gone with its auth database


class MlflowUsers(Resource, module="conveyor", name="MlflowUsers"):
    """Real MLflow users (basic-auth) for each persona of the environment."""

    def __init__(self, name: str, *, tracking_uri: str, admin_username: str, admin_password: pulumi.Input[str],
                 users: dict[str, pulumi.Input[str]], opts: pulumi.ResourceOptions | None = None):
        props = {"tracking_uri": tracking_uri, "admin_username": admin_username,
                 "admin_password": admin_password, "users": users}
        super().__init__(_MlflowUsersProvider(), name, props, opts)
