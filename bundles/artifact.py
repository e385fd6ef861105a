"""The code artifact: a reproducible wheel of the bundle's packages, named by content hash.

We write the wheel ourselves instead of calling a build backend: it takes
milliseconds, carries every file of the packages (data files included), and the
same sources always give the same bytes — so "re-deploying the same code changes
nothing" is a hash comparison.

Besides the packages, the wheel carries the project files a run needs at its root
(`RUNTIME_FILES`: `dvc.yaml`, whose stages the ingest task runs), because a run reads
nothing of the checkout it was deployed from: its tasks start in the unpacked wheel.
`FORMAT` says what a runner may expect of a deployed artifact; a runner refuses the
artifact of another format (`check_format`) instead of running it half-right.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bundles.errors import BundleError
from core.files import atomic_write

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_SUFFIXES = (".pyc", ".pyo")
RUNTIME_FILES = ("dvc.yaml",)  # project files (not packages) that tasks read at run time, shipped at the wheel root
# 1: packages only (tasks ran in the checkout); 2: + RUNTIME_FILES, tasks run in the unpacked wheel and read
# params, resource settings and dvc.yaml from the deployment. Bump when a runner needs something new of it.
FORMAT = 2


@dataclass(frozen=True)
class CodeArtifact:
    hash: str  # sha256 of the sources (paths + contents)
    files: list[str]
    wheel_name: str

    @property
    def short(self) -> str:
        return self.hash[:12]


def default_packages(root: Path) -> list[str]:
    """Every top-level package directory of the project except tests."""
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and (p / "__init__.py").is_file() and p.name not in ("tests", "bench", "build", "dist")
    )


def _listed_files(root: Path, packages: list[str]) -> list[str]:
    """Tracked and untracked-but-not-ignored files of the packages (git), else a plain walk."""
    proc = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", *packages],
        cwd=root, capture_output=True, text=True,
    )
    if proc.returncode == 0 and proc.stdout.strip():
        names = proc.stdout.splitlines()
    else:
        names = [str(p.relative_to(root)) for pkg in packages for p in (root / pkg).rglob("*") if p.is_file()]
    return sorted({
        n for n in names
        if (root / n).is_file() and "__pycache__" not in n and not n.endswith(_SKIP_SUFFIXES)
    })


def _dist_name(bundle: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in bundle).lower()


def describe(root: Path, bundle: str, packages: list[str] | None) -> CodeArtifact:
    """Hash the sources without building anything (used by `plan`)."""
    packages = packages or default_packages(root)
    missing = [p for p in packages if not (root / p).is_dir()]
    if missing:
        raise BundleError(f"artifact packages not found in {root}: {', '.join(missing)}")
    files = _listed_files(root, packages)
    if not files:
        raise BundleError(f"no source files found for packages {', '.join(packages)}")
    files += [name for name in RUNTIME_FILES if (root / name).is_file()]
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    content_hash = digest.hexdigest()
    wheel = f"{_dist_name(bundle)}-0+{content_hash[:12]}-py3-none-any.whl"
    return CodeArtifact(hash=content_hash, files=files, wheel_name=wheel)


def check_format(found: int | None, deployment: str, target: str) -> None:
    """A runner runs only artifacts of its own `FORMAT`; BundleError naming the deployment and the fix."""
    found = found or 1  # deployments from before the format was recorded
    if found < FORMAT:
        raise BundleError(
            f"deployment {deployment} is older than this runner's code: its code artifact has format {found}, "
            f"which ran tasks in the checkout (this runner needs format {FORMAT}: params, resource settings and "
            f"dvc.yaml from the deployment); redeploy it with `conveyor bundle deploy -t {target}`")
    if found > FORMAT:
        raise BundleError(
            f"deployment {deployment} is newer than this runner's code: its code artifact has format {found}, "
            f"this runner knows format {FORMAT}; run it with the Conveyor version that deployed it (update "
            f"the checkout this runner or the env's scheduler runs from, and restart the scheduler)")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(root: Path, bundle: str, art: CodeArtifact, out_dir: Path) -> Path:
    """Write the wheel (PEP 427 layout, fixed timestamps) into out_dir."""
    dist = _dist_name(bundle)
    version = f"0+{art.short}"
    info = f"{dist}-{version}.dist-info"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / art.wheel_name
    buf = io.BytesIO()
    records: list[str] = []

    def add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        zi = zipfile.ZipInfo(name, date_time=_EPOCH)
        zi.external_attr = 0o644 << 16
        zi.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(zi, data)
        records.append(f"{name},{_record_hash(data)},{len(data)}")

    with zipfile.ZipFile(buf, "w") as zf:
        for name in art.files:
            add(zf, name, (root / name).read_bytes())
        add(zf, f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode())
        add(zf, f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: conveyor-bundles\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        record = "\n".join(records + [f"{info}/RECORD,,"]) + "\n"
        zi = zipfile.ZipInfo(f"{info}/RECORD", date_time=_EPOCH)
        zi.external_attr = 0o644 << 16
        zf.writestr(zi, record)
    return atomic_write(target, buf.getvalue())


def unpack(wheel: Path, dest: Path) -> None:
    """Extract the wheel so tasks can import the deployed code (atomic: dest appears complete)."""
    if dest.is_dir():
        return
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp)
    tmp.rename(dest)
