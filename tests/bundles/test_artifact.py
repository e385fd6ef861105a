"""The code wheel: reproducible bytes, content-hash names, every package file, installable."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from bundles import artifact

FIXTURE = Path(__file__).parent / "fixtures" / "project"


def test_wheel_is_reproducible_and_tracks_content(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(FIXTURE, root)
    (root / "demo_tasks" / "settings.yaml").write_text("threshold: 0.5\n")  # data files ship too
    (root / "demo_tasks" / "__pycache__").mkdir()
    (root / "demo_tasks" / "__pycache__" / "step.cpython-311.pyc").write_bytes(b"junk")

    first = artifact.describe(root, "demo", None)
    assert first.files == ["demo_tasks/__init__.py", "demo_tasks/check.py", "demo_tasks/settings.yaml", "demo_tasks/step.py"]
    a = artifact.build_wheel(root, "demo", first, tmp_path / "a")
    b = artifact.build_wheel(root, "demo", artifact.describe(root, "demo", None), tmp_path / "b")
    assert a.name == b.name and a.read_bytes() == b.read_bytes()
    assert first.short in a.name

    (root / "demo_tasks" / "settings.yaml").write_text("threshold: 0.6\n")
    assert artifact.describe(root, "demo", None).hash != first.hash

    names = zipfile.ZipFile(a).namelist()
    assert "demo_tasks/settings.yaml" in names and not any("__pycache__" in n for n in names)
    target = tmp_path / "installed"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(a)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (target / "demo_tasks" / "step.py").is_file()


def test_the_wheel_carries_the_files_runs_read_at_its_root(tmp_path):
    """dvc.yaml ships with the code (a run's DVC stages are the deployment's), and counts in its hash."""
    root = tmp_path / "p"
    shutil.copytree(FIXTURE, root)
    without = artifact.describe(root, "demo", None)
    assert "dvc.yaml" not in without.files
    (root / "dvc.yaml").write_text("stages: {}\n")
    first = artifact.describe(root, "demo", None)
    assert first.files[-1] == "dvc.yaml" and first.hash != without.hash
    wheel = artifact.build_wheel(root, "demo", first, tmp_path / "w")
    artifact.unpack(wheel, tmp_path / "code")
    assert (tmp_path / "code" / "dvc.yaml").read_text() == "stages: {}\n"  # at the root of what tasks start in
    (root / "dvc.yaml").write_text("stages: {bronze: {cmd: 'true'}}\n")
    assert artifact.describe(root, "demo", None).hash != first.hash
