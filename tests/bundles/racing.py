"""Deploys that go wrong on purpose: two at the same instant, one killed midway."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from bundles.engine import Engine
from bundles.errors import BundleError
from bundles.loader import load_bundle
from core.contract import EnvironmentOutputs


def _deploy_in_child(project: str, outputs_json: str, user: str, queue, barrier) -> None:
    try:
        outputs = EnvironmentOutputs.model_validate_json(outputs_json)
        bundle, _ = load_bundle(Path(project), "dev", user=user)
        engine = Engine(bundle, outputs, jobs=None)  # storage only, whatever the platform
        barrier.wait(120)
        engine.deploy()
        queue.put("ok")
    except BundleError as exc:
        queue.put(f"error: {exc}")


def race_two_deploys(project: Path, outputs: EnvironmentOutputs, user: str) -> list[str]:
    """Sorted results of the two: "ok" or "error: <message>"."""
    ctx = multiprocessing.get_context("spawn")  # children inherit os.environ (S3 settings) at start
    queue, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_deploy_in_child, args=(str(project), outputs.model_dump_json(), user, queue, barrier))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    return sorted(queue.get(timeout=5) for _ in procs)


def kill_at_action(engine: Engine, n: int) -> None:
    """Make the engine's deploy die (as if killed) just before its n-th action."""
    calls: list[str] = []

    def die(action) -> None:
        calls.append(action.key)
        if len(calls) == n:
            raise KeyboardInterrupt

    engine.on_action = die
