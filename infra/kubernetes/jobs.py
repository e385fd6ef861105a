"""Rendered bundle-job manifests (`infra.kubernetes.manifests`) as Pulumi resources.

For a bundle deployed through a Pulumi program; `conveyor bundle` itself applies the
manifests with the Kubernetes API (`infra.kubernetes.kubeapi`) and never imports this.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def deploy_manifest(name: str, manifest: dict, opts: pulumi.ResourceOptions | None = None) -> pulumi.CustomResource:
    """A rendered Job/CronJob as a Pulumi resource, for bundles deployed through a Pulumi program."""
    kinds = {"Job": k8s.batch.v1.Job, "CronJob": k8s.batch.v1.CronJob}
    try:
        cls = kinds[manifest["kind"]]
    except KeyError:
        raise ValueError(f"deploy_manifest handles Job and CronJob, not {manifest.get('kind')!r}") from None
    return cls(name, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts)
