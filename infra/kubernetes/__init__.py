"""The `kubernetes` platform (`conveyor:platform: kubernetes`).

The platform class, registered in `infra.platforms`:

    KubernetesEnvironment(name: str, args: infra.environment.EnvironmentArgs,
                          opts: pulumi.ResourceOptions | None = None) -> Environment

It reads its typed settings from `args.config.kubernetes` (stack key `conveyor:kubernetes`,
model `infra.kubernetes.config.KubernetesConfig`) and exposes the contract's outputs
(`tracking_uri`, `serving_url`, `storage_uri`, `storage`, `credentials`) like the local one.

For the bundle engine, without Pulumi (`infra.kubernetes.manifests`, `infra.kubernetes.kubeapi`):

    target = ClusterTarget.from_config(env, parse_kubernetes_config(raw))
    render_task_job(target, job=..., task=..., module=..., params=..., run_id=...) -> Job manifest
    render_job(target, job=..., command=[...], run_id=...)                         -> Job manifest
    render_cronjob(target, job=..., schedule="0 3 * * *", command=[...])           -> CronJob manifest

and, inside a Pulumi program, `infra.kubernetes.jobs.deploy_manifest(name, manifest, opts)`.

Importing this package loads no Pulumi module; the Pulumi-side names below load on first use.
"""

from infra.kubernetes.config import KubernetesConfig, parse_kubernetes_config
from infra.kubernetes.manifests import ClusterTarget, render_cronjob, render_job, render_task_job, task_command

_PULUMI_SIDE = {
    "KubernetesEnvironment": "infra.kubernetes.environment",
    "deploy_manifest": "infra.kubernetes.jobs",
}


def __getattr__(name: str):
    if name in _PULUMI_SIDE:
        import importlib

        return getattr(importlib.import_module(_PULUMI_SIDE[name]), name)
    raise AttributeError(name)


__all__ = [
    "ClusterTarget",
    "KubernetesConfig",
    "KubernetesEnvironment",
    "deploy_manifest",
    "parse_kubernetes_config",
    "render_cronjob",
    "render_job",
    "render_task_job",
    "task_command",
]
