"""Make a cluster env's stack URLs answer on this machine: `python -m infra.kubernetes.portforward dev`.

Without an ingress, `tracking_uri`/`serving_url` are http://127.0.0.1:<env port>, the same
ports as the local platform; this runs the two `kubectl port-forward`s that back them
(Ctrl-C stops both).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from core.paths import project_dir
from infra.config import read_stack_file
from infra.kubernetes.config import KubernetesConfig, parse_kubernetes_config
from infra.kubernetes.names import MLFLOW_PORT, SERVING_PORT


def commands(env: str, cfg: KubernetesConfig, tracking_port: int, serving_port: int) -> list[list[str]]:
    base = ["kubectl"]
    if cfg.kubeconfig:
        base += ["--kubeconfig", cfg.kubeconfig]
    if cfg.context:
        base += ["--context", cfg.context]
    ns = cfg.namespace(env)
    return [
        [*base, "-n", ns, "port-forward", "svc/mlflow", f"{tracking_port}:{MLFLOW_PORT}"],
        [*base, "-n", ns, "port-forward", "svc/serving", f"{serving_port}:{SERVING_PORT}"],
    ]


def commands_for(env: str) -> list[list[str]]:
    """The port-forwards for `env`, from its Pulumi.<env>.yaml; ValueError names what is wrong."""
    stack_file = project_dir() / f"Pulumi.{env}.yaml"
    if not stack_file.exists():
        raise ValueError(f"no stack file {stack_file.name}: unknown environment {env!r}")
    raw = read_stack_file(stack_file)
    if raw.get("platform", "local") != "kubernetes":
        raise ValueError(f"{stack_file.name}: conveyor:platform is not kubernetes, nothing to forward")
    ports = raw.get("ports") or {}
    if "tracking" not in ports or "serving" not in ports:
        raise ValueError(f"{stack_file.name}: conveyor:ports.tracking and conveyor:ports.serving are required")
    return commands(env, parse_kubernetes_config(raw.get("kubernetes")), int(ports["tracking"]), int(ports["serving"]))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m infra.kubernetes.portforward <env>", file=sys.stderr)
        return 2
    try:
        cmds = commands_for(args[0])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if shutil.which("kubectl") is None:
        print("error: kubectl not found on PATH", file=sys.stderr)
        return 2
    procs = [subprocess.Popen(cmd) for cmd in cmds]
    for cmd in cmds:
        print("running:", " ".join(cmd), flush=True)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
    failed = [p.returncode for p in procs if p.returncode not in (0, None, -15)]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
