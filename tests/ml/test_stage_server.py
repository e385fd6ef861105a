"""The medallion stages handed to the ingest task's process (ml/data/stage_server.py) write the
same files as stages run by themselves, take the previous stage's table from memory, and fail
with the same one line. Real stage commands (`python -m ml.data.medallion ...` in a workspace),
no DVC: the ingest jobs of tests/ml run it end to end."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ml.data import medallion, stage_server, tables
from ml.usecase import load_use_case
from tests.ml.harness import PROJECT

FRAUD = load_use_case("fraud")

STAGES = ("bronze", "silver", "gold")


def workspace(root: Path, rows: int = 3000) -> Path:
    """A folder laid out as a DVC workspace for the stages: params.yaml and data/."""
    params = yaml.safe_load((PROJECT / "usecases" / "fraud" / "params.yaml").read_text())
    params["data"].update(rows=rows, source="generate")
    params["feature_tables"]["customer_aggregates"]["version"] = "none"  # pinned, never refreshed: defaults
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def command(*stages: str) -> list[str]:
    """The stage commands of a `dvc repro`, one after the other (stopping at the first that fails)."""
    return ["sh", "-c", " && ".join(f"{sys.executable} -m ml.data.medallion {s} --use-case fraud" for s in stages)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT), "CONVEYOR_MEDALLION_SERVER": ""}


def md5s(ws: Path) -> dict[str, str]:
    return {s: hashlib.md5((ws / "data" / f"{s}.parquet").read_bytes()).hexdigest() for s in STAGES}


@pytest.fixture
def spied(monkeypatch):
    """(stages run in this process, files `read_frame` read) while a test runs."""
    calls, reads = [], []
    run_stage, read_frame = medallion.run_stage, medallion.read_frame
    monkeypatch.setattr(medallion, "run_stage", lambda *a, **k: calls.append(a[0]) or run_stage(*a, **k))
    monkeypatch.setattr(medallion, "read_frame", lambda path, *a, **k: reads.append(Path(path).name) or read_frame(path, *a, **k))
    return calls, reads


def test_served_stages_write_the_files_stages_by_themselves_write(tmp_path, spied):
    alone, served = workspace(tmp_path / "alone"), workspace(tmp_path / "served")
    proc = subprocess.run(command(*STAGES), cwd=alone, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert spied == ([], [])
    proc = stage_server.run(command(*STAGES), served, env())
    assert proc.returncode == 0, proc.stderr
    calls, reads = spied
    assert calls == list(STAGES), "each stage ran in this process"
    assert reads == [], "silver and gold took the table the stage before had just written"
    assert md5s(served) == md5s(alone)


def test_a_table_changed_on_disk_since_it_was_kept_is_read_again(tmp_path, spied):
    ws, kept = workspace(tmp_path / "ws"), {}
    medallion.run_stage("bronze", FRAUD, Path("params.yaml"), ws, kept)
    bronze = ws / "data" / "bronze.parquet"
    tables.write_frame(tables.read_frame(bronze).iloc[:100], bronze)  # what was kept is stale now
    medallion.run_stage("silver", FRAUD, Path("params.yaml"), ws, kept)
    assert spied[1] == ["bronze.parquet"], "silver read the file, not what was kept"
    assert pq.read_metadata(ws / "data" / "silver.parquet").num_rows == 100


def test_a_served_stage_fails_with_the_line_it_fails_with_alone(tmp_path):
    ws = workspace(tmp_path / "ws")
    (ws / "data").mkdir()
    tables.write_frame(pa.table({FRAUD.raw_columns[0]: ["t1"]}).to_pandas(), ws / "data" / "bronze.parquet")
    proc = stage_server.run(command("silver", "gold"), ws, env())
    assert proc.returncode == 1
    # the line tests/ml/test_task.py sees from the stage run by itself
    missing = FRAUD.raw_columns[1:]
    assert proc.stderr.strip().splitlines() == ["error: silver stage: raw table lacks required columns "
                                                 f"{missing} (expected the bronze schema {FRAUD.raw_columns})"]


def test_a_stage_of_another_workspace_runs_by_itself(tmp_path, spied):
    served, other = workspace(tmp_path / "served"), workspace(tmp_path / "other")
    proc = stage_server.run(["sh", "-c", f"cd {other} && {command('bronze')[2]}"], served, env())
    assert proc.returncode == 0, proc.stderr
    assert spied[0] == [] and (other / "data" / "bronze.parquet").is_file()


@pytest.mark.parametrize("rows,distinct", [(1, 1), (10, 5), (10, 6), (1000, 500), (1000, 501), (1000, 30), (1000, 549),
                                           (1000, 560), (1000, 1000)])
def test_mostly_distinct_is_the_whole_column_count(rows, distinct):
    import pyarrow.compute as pc

    for values in ([f"v{i % distinct}" for i in range(rows)],  # the distinct ones first
                   [f"v{min(i, distinct - 1)}" for i in range(rows)][::-1],  # repeats first
                   [None if i % distinct == 0 else f"v{i % distinct}" for i in range(rows)]):  # null counts as one
        column = pa.chunked_array([values[: rows // 3], values[rows // 3:]], pa.string())
        assert tables._mostly_distinct(column) == (pc.count_distinct(column, mode="all").as_py() > rows // 2)
