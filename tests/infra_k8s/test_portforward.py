"""`python -m infra.kubernetes.portforward <env>`: the commands behind the stack's 127.0.0.1 URLs."""

from __future__ import annotations

import yaml

from infra.kubernetes import portforward
from infra.kubernetes.config import parse_kubernetes_config


def test_commands_use_the_env_ports_namespace_and_context():
    cfg = parse_kubernetes_config({"context": "kind-conveyor", "namespace_prefix": "ml"})
    tracking, serving = portforward.commands("staging", cfg, 5201, 3201)
    assert tracking == ["kubectl", "--context", "kind-conveyor", "-n", "ml-staging", "port-forward", "svc/mlflow",
                        "5201:5000"]
    assert serving[-2:] == ["svc/serving", "3201:3000"]


def test_reads_the_stack_file(tmp_path, monkeypatch):
    stack = {"config": {"conveyor:platform": "kubernetes", "conveyor:ports": {"tracking": 5101, "serving": 3101},
                        "conveyor:kubernetes": {"kubeconfig": "/etc/kube/ci.yaml"}}}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    monkeypatch.setenv("CONVEYOR_PROJECT_DIR", str(tmp_path))
    cmds = portforward.commands_for("dev")
    assert cmds[0][:3] == ["kubectl", "--kubeconfig", "/etc/kube/ci.yaml"]
    assert cmds[0][-1] == "5101:5000"


def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": {"conveyor:platform": "local"}}))
    monkeypatch.setenv("CONVEYOR_PROJECT_DIR", str(tmp_path))
    assert portforward.main(["dev"]) == 2
    assert capsys.readouterr().err.strip() == "error: Pulumi.dev.yaml: conveyor:platform is not kubernetes, nothing to forward"
    assert portforward.main(["qa"]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err
    assert portforward.main([]) == 2
