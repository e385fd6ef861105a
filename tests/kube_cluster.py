"""A real Kubernetes control plane on loopback for the kubernetes platform's tests.

etcd + kube-apiserver + kube-controller-manager (built once by
`scripts/k8s-control-plane.sh`), no kubelet and no scheduler: objects are validated,
admitted (Pod Security included), authorised (RBAC) and reconciled (CronJob → Job → Pod)
by the real components; pods are created but never run.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CONTROLLERS = ("*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,"
               "-node-route-controller,-persistentvolume-attach-detach-controller")


@dataclass
class ControlPlane:
    url: str
    token: str
    kubeconfig: Path
    ca_file: Path
    workdir: Path

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca_file)), timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})

    def api(self):
        from infra.kubernetes.kubeapi import KubeApi

        return KubeApi(str(self.kubeconfig))

    def can(self, user: str, verb: str, group: str, resource: str, namespace: str) -> bool:
        """The API server's own RBAC decision (a SubjectAccessReview)."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                           "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                                  "namespace": namespace}}}
        with self.http() as client:
            resp = client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
        resp.raise_for_status()
        return bool(resp.json()["status"].get("allowed"))


def binaries() -> Path:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-control-plane.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"k8s-control-plane.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _keypair(workdir: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = workdir / "sa.key", workdir / "sa.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):  # controllers, then the API server, then etcd
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def control_plane(workdir: Path, controllers: bool = True) -> Iterator[ControlPlane]:
    bin_dir = binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f"{token},admin,admin-uid,system:masters\n")
    sa_key, sa_pub = _keypair(workdir)
    etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
    logs = {name: open(workdir / f"{name}.log", "w") for name in ("etcd", "apiserver", "controller-manager")}
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list[str]) -> None:
        procs.append(subprocess.Popen(argv, stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("etcd", [str(bin_dir / "etcd"), "--name=test", f"--data-dir={workdir / 'etcd'}",
                       f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                       f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                       f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                       f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                       f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                       "--unsafe-no-fsync", "--log-level=warn"])
        certs = workdir / "certs"
        start("apiserver", [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
                            f"--cert-dir={certs}", f"--token-auth-file={workdir / 'tokens.csv'}",
                            "--authorization-mode=RBAC",
                            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
                            "--service-cluster-ip-range=10.0.0.0/24",
                            # no token controller for pods: the SA admission would reject every pod
                            "--disable-admission-plugins=ServiceAccount"])
        url = f"https://127.0.0.1:{api_port}"
        deadline = time.time() + 120
        while True:
            try:
                resp = httpx.get(f"{url}/readyz", verify=False, headers={"Authorization": f"Bearer {token}"}, timeout=2)
                if resp.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("control plane did not start:\n" + (workdir / "apiserver.log").read_text()[-3000:])
            time.sleep(0.2)
        ca = certs / "apiserver.crt"
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: test, cluster: {{server: '{url}', certificate-authority: '{ca}'}}}}]\n"
            f"users: [{{name: admin, user: {{token: '{token}'}}}}]\n"
            "contexts: [{name: test, context: {cluster: test, user: admin}}]\n"
            "current-context: test\n")
        if controllers:
            start("controller-manager", [
                str(bin_dir / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
                "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", f"--cert-dir={workdir / 'kcm-certs'}",
                f"--service-account-private-key-file={sa_key}", f"--root-ca-file={ca}",
                "--use-service-account-credentials=false", f"--controllers={CONTROLLERS}"])
        yield ControlPlane(url=url, token=token, kubeconfig=kubeconfig, ca_file=ca, workdir=workdir)
    finally:
        _stop(procs)
        for log in logs.values():
            log.close()


def wait_for(predicate, timeout: float = 90, interval: float = 0.5, what: str = "condition"):
    """Poll until `predicate()` is truthy; returns its value (controllers act asynchronously)."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

