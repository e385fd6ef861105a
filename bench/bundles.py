"""Bundle engine speed: load+validate, code wheel, deploy of jobs, per-task run overhead.

    python -m bench.bundles [--jobs 200] [--tasks 10] [--run-tasks 10]

Prints one table. Uses a temporary project and env storage; jobs-only bundles never
talk to MLflow, so no server is needed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bundles import artifact
from bundles.engine import Engine
from bundles.loader import load_bundle
from bundles.runner import JobRunner
from core import settings
from core.contract import Credential, EnvironmentOutputs, storage_layout

NOOP = '''
def main(argv=None):
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


def _project(root: Path, jobs: int, tasks: int, run_tasks: int) -> None:
    (root / "benchpkg").mkdir(parents=True)
    (root / "benchpkg" / "__init__.py").write_text("")
    (root / "benchpkg" / "noop.py").write_text(NOOP)
    (root / "bundle.yml").write_text(
        "bundle:\n  name: bench\ninclude: [resources/*.yml]\n"
        "targets:\n  dev: {mode: production, default: true, run_as: ci}\n"
    )
    (root / "resources").mkdir()
    lines = ["resources:", "  jobs:"]
    for j in range(jobs):
        lines += [f"    job_{j}:", "      schedule: {cron: '0 3 * * *'}", "      tasks:"]
        for t in range(tasks):
            dep = f", depends_on: [t{t - 1}]" if t else ""
            lines.append(f"        t{t}: {{python: {{module: benchpkg.noop, parameters: {{i: {t}}}}}{dep}}}")
    lines += ["    chain:", "      max_parallel_tasks: 1", "      tasks:"]
    for t in range(run_tasks):
        dep = f", depends_on: [t{t - 1}]" if t else ""
        lines.append(f"        t{t}: {{python: {{module: benchpkg.noop}}{dep}}}")
    (root / "resources" / "jobs.yml").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bundles", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--run-tasks", type=int, default=10)
    args = parser.parse_args(argv)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        _project(root, args.jobs, args.tasks, args.run_tasks)
        storage = (Path(tmp) / "storage").as_uri()
        outputs = EnvironmentOutputs(
            env="bench", platform="local", tracking_uri="http://127.0.0.1:9", serving_url="http://127.0.0.1:9",
            storage_uri=storage, storage=storage_layout(storage),
            credentials={"ci": Credential(username="ci", password="x", token="t")},
        )
        start = time.perf_counter()
        bundle, diags = load_bundle(root, "dev", user="bench")
        assert bundle is not None, [d.render() for d in diags]
        rows.append((f"load + validate ({args.jobs} jobs x {args.tasks} tasks)", f"{time.perf_counter() - start:.2f} s"))

        repo = Path(__file__).resolve().parents[1]
        start = time.perf_counter()
        art = artifact.describe(repo, "conveyor", ["conveyor", "infra", "bundles", "ml"])
        artifact.build_wheel(repo, "conveyor", art, Path(tmp) / "wheel")
        rows.append((f"code wheel of this repo ({len(art.files)} files)", f"{time.perf_counter() - start:.2f} s"))

        engine = Engine(bundle, outputs)
        start = time.perf_counter()
        engine.deploy()
        rows.append((f"first deploy ({args.jobs + 1} jobs)", f"{time.perf_counter() - start:.2f} s"))
        start = time.perf_counter()
        engine.deploy()
        rows.append(("re-deploy, nothing changed", f"{time.perf_counter() - start:.2f} s"))

        os.environ.pop(settings.ENV_OUTPUTS.name, None)
        start = time.perf_counter()
        record = JobRunner(outputs, engine.store).run("chain")
        took = time.perf_counter() - start
        assert record.status == "success"
        rows.append((f"run of {args.run_tasks} sequential no-op tasks", f"{took:.2f} s ({took / args.run_tasks * 1000:.0f} ms/task)"))

    table = Table(title="bundle engine")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
