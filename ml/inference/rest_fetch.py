"""The batch job's model fetch without importing MLflow: four kinds of REST call to the tracking server.

Importing MLflow costs the fetch process ~1.5 s of CPU, on a 2-core machine a third of the time
the job takes to score 1M rows (issue #16). When the tracking server is plain HTTP(S) with basic
or bearer auth and serves the model's artifacts itself (`mlflow-artifacts:`, the local and
Kubernetes platforms' setting), `fetch` does what `ml.inference.fetch` does with MLflow:

    GET /api/2.0/mlflow/registered-models/alias        the version holding the alias
    GET /api/2.0/mlflow/model-versions/get             or the named version
    GET /api/2.0/mlflow/model-versions/get-download-uri where its files are
    GET /api/2.0/mlflow-artifacts/artifacts[/<path>]   list them / download each into DEST

and returns the same answer. Anything else — another artifact store, TLS or auth settings only
MLflow's client knows (`MLFLOW_TRACKING_INSECURE_TLS`, client certificates, an auth plugin), an
unexpected answer from the server — returns None, and the caller fetches with MLflow, whose
errors and retries the job then gets. Stdlib and PyYAML only.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import yaml

TIMEOUT_S = 60
# Client settings only MLflow's own client applies: with any of them set, leave the fetch to it.
MLFLOW_ONLY = ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
               "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")


class NotHere(Exception):
    """The REST fetch does not apply here (or the server answered unexpectedly): use MLflow."""


class Api:
    def __init__(self, base: str, env: Mapping[str, str]):
        self.base = base.rstrip("/")
        self.headers = {"User-Agent": "conveyor-batch-fetch"}
        if env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
            pair = f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif env.get("MLFLOW_TRACKING_TOKEN"):
            self.headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"

    def open(self, endpoint: str, **query: str):
        url = f"{self.base}/api/2.0/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return urllib.request.urlopen(urllib.request.Request(url, headers=self.headers), timeout=TIMEOUT_S)

    def get(self, endpoint: str, **query: str) -> dict:
        with self.open(endpoint, **query) as answer:
            return json.loads(answer.read())


def _files(api: Api, root: str, under: str = "") -> list[str]:
    """The artifact files below `root`, as safe relative paths."""
    listing = api.get("mlflow-artifacts/artifacts", path=f"{root}/{under}".rstrip("/"))
    out = []
    for entry in listing.get("files", []):
        name = PurePosixPath(entry["path"]).name  # a listing is one directory: its entries' last names
        if name in ("", ".", "..") or entry["path"].startswith("/") or ".." in PurePosixPath(entry["path"]).parts:
            raise NotHere(f"artifact path {entry['path']!r}")
        rel = str(PurePosixPath(under, name))
        out += _files(api, root, rel) if entry.get("is_dir") else [rel]
    return out


def _pickle_allowed(env: Mapping[str, str]) -> bool:
    """MLflow's `MLFLOW_ALLOW_PICKLE_DESERIALIZATION`, parsed as MLflow parses it (default on)."""
    value = env.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    if value is None:
        return True
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise NotHere("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")  # MLflow's own message names what it takes


def fetch(name: str, version: str | None, alias: str, dest: str, env: Mapping[str, str] | None = None) -> dict | None:
    """`ml.inference.fetch`'s answer for `name` at `version` (or the holder of `alias`), its
    files downloaded into `dest`; None when only MLflow's client can fetch it."""
    env = os.environ if env is None else env
    uri = env.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")) or any(env.get(k) for k in MLFLOW_ONLY):
        return None
    api = Api(uri, env)
    try:
        allowed = _pickle_allowed(env)
        if version:
            mv = api.get("mlflow/model-versions/get", name=name, version=version)["model_version"]
        else:
            try:
                mv = api.get("mlflow/registered-models/alias", name=name, alias=alias)["model_version"]
            except urllib.error.HTTPError as exc:
                if exc.code in (400, 404):  # no such alias / no such model: what `alias_version` calls None
                    return {"missing": True}
                raise
        where = api.get("mlflow/model-versions/get-download-uri", name=name, version=str(mv["version"]))["artifact_uri"]
        if not where.startswith("mlflow-artifacts:"):
            return None
        root = urllib.parse.urlparse(where).path.strip("/")
        for rel in _files(api, root):
            target = Path(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with api.open(f"mlflow-artifacts/artifacts/{urllib.parse.quote(f'{root}/{rel}')}") as src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
        flavors = yaml.safe_load(Path(dest, "MLmodel").read_text()).get("flavors") or {}
    except (NotHere, OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return None  # HTTPError and URLError are OSErrors: MLflow retries them or says what is wrong
    return {"version": str(mv["version"]), "path": dest, "sklearn": flavors.get("sklearn"), "allowed": allowed}
