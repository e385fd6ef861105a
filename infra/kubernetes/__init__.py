"""The `kubernetes` platform (`conveyor:platform: kubernetes`).

Entry point used by `infra.environment.create_environment`:

    KubernetesEnvironment(name: str, args: infra.environment.EnvironmentArgs,
                          opts: pulumi.ResourceOptions | None = None) -> Environment

It reads its typed settings from `args.config.kubernetes` (stack key `conveyor:kubernetes`,
model `infra.kubernetes.config.KubernetesConfig`) and exposes the contract's outputs
(`tracking_uri`, `serving_url`, `storage_uri`, `storage`, `credentials`) like the local one.

For the bundle engine (no Pulumi needed):

    target = ClusterTarget.from_config(env, parse_kubernetes_config(raw))
    render_task_job(target, job=..., task=..., module=..., params=..., run_id=...) -> Job manifest
    render_job(target, job=..., command=[...], run_id=...)                         -> Job manifest
    render_cronjob(target, job=..., schedule="0 3 * * *", command=[...])           -> CronJob manifest
    deploy_manifest(name, manifest, opts) -> the manifest as a Pulumi resource
"""

from infra.kubernetes.config import KubernetesConfig, parse_kubernetes_config
from infra.kubernetes.jobs import (
    ClusterTarget,
    deploy_manifest,
    render_cronjob,
    render_job,
    render_task_job,
    task_command,
)


def __getattr__(name: str):
    # Imported lazily: the environment needs the lead's infra.environment module, the
    # job renderers do not (the bundle engine imports them without Pulumi state).
    if name == "KubernetesEnvironment":
        from infra.kubernetes.environment import KubernetesEnvironment

        return KubernetesEnvironment
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
