"""The README is a contract with a new user: every command and link in it must exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def shell_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            lines.extend(part.strip() for part in line.split("&&") if part.strip())
    return lines


def conveyor_commands() -> list[list[str]]:
    """`conveyor a b …` → the sub-command path (words before the first option or argument)."""
    seen, result = set(), []
    for line in shell_lines():
        if not line.startswith("conveyor "):
            continue
        words = line.split()[1:]
        path = []
        for word in words:
            if word.startswith("-") or not re.fullmatch(r"[a-z][a-z_-]*", word):
                break
            path.append(word)
        key = tuple(path[:2])
        if key not in seen:
            seen.add(key)
            result.append(list(key))
    return result


def test_readme_shows_the_two_commands():
    assert "make demo" in README and "make test" in README


@pytest.mark.parametrize("path", conveyor_commands(), ids=lambda p: " ".join(p))
def test_every_conveyor_command_in_the_readme_exists(path):
    proc = subprocess.run([CONVEYOR, *path, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"`conveyor {' '.join(path)}` from the README does not exist:\n{proc.stderr}"


def test_every_make_target_in_the_readme_exists():
    targets = {m for line in shell_lines() for m in re.findall(r"^make ([a-z-]+)", line)}
    targets |= set(re.findall(r"`make ([a-z-]+)`", README))
    assert {"demo", "test", "setup", "demo-clean"} <= targets
    for target in targets:
        proc = subprocess.run(["make", "-n", target], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, f"make {target}: {proc.stderr}"


def test_every_linked_file_exists():
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links to missing {link}"


def test_documented_ports_match_the_stacks():
    import yaml

    for env, (tracking, serving) in {"dev": (5101, 3101), "staging": (5201, 3201), "prod": (5301, 3301)}.items():
        config = yaml.safe_load((ROOT / f"Pulumi.{env}.yaml").read_text())["config"]
        assert config["conveyor:ports"] == {"tracking": tracking, "serving": serving}
        assert f"{tracking}/{serving}" in README
