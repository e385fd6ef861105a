"""Play kubelet for one pod of the test control plane: run its container here, report the result.

The control plane has no kubelet and this machine no container runtime, so a test takes the
Pod exactly as the API server and controllers made it (command, env, secret refs, mounts),
runs its command as a local process (volumes → temp dirs, in-cluster service names → the
loopback servers standing in for them), then writes the pod's phase to its status as a
kubelet would, so Job and CronJob controllers see the run finish.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_LABEL = re.compile(r"metadata\.labels\['([^']+)'\]")


def _secret(api, namespace: str, name: str) -> dict[str, str]:
    secret = api.get("v1", "Secret", namespace, name)
    if secret is None:
        raise AssertionError(f"pod refers to Secret {namespace}/{name}, which does not exist")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def run_pod(api, pod: dict, workdir: Path, services: dict[str, str] | None = None,
            extra_env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the pod's (single) container locally; returns the finished process."""
    ns, spec = pod["metadata"]["namespace"], pod["spec"]
    container = spec["containers"][0]
    volumes: dict[str, Path] = {}
    for vol in spec.get("volumes", []):
        local = workdir / "volumes" / vol["name"]
        local.mkdir(parents=True, exist_ok=True)
        if "secret" in vol:
            for key, value in _secret(api, ns, vol["secret"]["secretName"]).items():
                (local / key).write_text(value)
        volumes[vol["name"]] = local
    mounts = sorted(((m["mountPath"], volumes[m["name"]]) for m in container.get("volumeMounts", [])),
                    key=lambda m: -len(m[0]))
    rewrites = {**(services or {}), **{p: str(d) for p, d in mounts}}
    pattern = re.compile("|".join(re.escape(k) for k in sorted(rewrites, key=len, reverse=True)))

    def here(value: str) -> str:  # one pass: a rewritten path is never rewritten again
        return pattern.sub(lambda m: rewrites[m.group(0)], value) if rewrites else value

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_secret(api, ns, source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "valueFrom" not in item:  # (an empty value is stored as no value)
            env[item["name"]] = here(_REF.sub(lambda m: env.get(m.group(1), m.group(0)), item.get("value", "")))
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            env[item["name"]] = _secret(api, ns, ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        elif "fieldRef" in ref:
            label = _LABEL.fullmatch(ref["fieldRef"]["fieldPath"])
            env[item["name"]] = pod["metadata"]["labels"][label.group(1)] if label else ""
    # what the image provides: our interpreter and the package on the path
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
                "PYTHONPATH": str(ROOT), **(extra_env or {})})
    argv = [here(a) for a in [*container.get("command", []), *container.get("args", [])]]
    cwd = workdir / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def report(cp, pod: dict, exit_code: int) -> None:
    """Write the pod's terminal phase, as its kubelet would."""
    meta = pod["metadata"]
    phase = "Succeeded" if exit_code == 0 else "Failed"
    status = {"status": {"phase": phase, "containerStatuses": [{
        "name": pod["spec"]["containers"][0]["name"], "image": pod["spec"]["containers"][0]["image"],
        "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}},
    }]}}
    with cp.http() as client:
        resp = client.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", json=status,
                            headers={"Content-Type": "application/merge-patch+json"})
    resp.raise_for_status()
