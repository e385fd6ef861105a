"""Kind `partitions`: the parquet/csv files under a directory (any depth, e.g. `date=2026-03-01/`)
or matching a glob, on a local disk or object storage; read in name order and concatenated.

New partitions land over time; each ingest reads what is there now, keeps the declared window
and lands that snapshot, so a new partition gives a new data version and none gives the same one.
"""

from __future__ import annotations

from ml.data.sources.base import (SUFFIXES, SourceError, SourceKind, filesystem, locate, read_file, require_columns,
                                  storage_error)

GLOB = set("*?[")


def _display(location: str, fs, path: str) -> str:
    if "://" in location and not location.startswith("file:"):
        return f"{location.split('://', 1)[0]}://{path}"
    return path


class Partitions(SourceKind):
    name = "partitions"
    needs = ("path",)
    allows = ("window",)

    def files(self, location: str) -> tuple[object, dict[str, int]]:
        """(filesystem, {path: size}) of the partitions at `location`, in name order."""
        fs, path = filesystem(location)
        try:
            fs.invalidate_cache()  # partitions land while a process runs: list what is there now
            if GLOB & set(path):
                found = fs.glob(path, detail=True)
            elif fs.isdir(path):
                found = fs.find(path, detail=True)
            else:
                found = {}
        except Exception as exc:
            if storage_error(exc):
                raise SourceError(f"partitions at {location}: {exc}") from None
            raise
        files = {p: int(info.get("size") or 0) for p, info in found.items()
                 if info.get("type") != "directory" and p.endswith(SUFFIXES)
                 and not p.rsplit("/", 1)[-1].startswith((".", "_"))}  # .tmp files, _SUCCESS markers
        return fs, dict(sorted(files.items()))

    def read(self, uc, spec, where):
        import pandas as pd

        location = locate(spec.path, where)
        fs, files = self.files(location)
        if not files:
            raise SourceError(f"partitions at {location}: no parquet/csv file there")
        frames = []
        for path in files:
            shown = _display(location, fs, path)
            frame = read_file(fs, path, shown)
            require_columns(uc, frame, f"partition {shown}")
            frames.append(frame)
        manifest = {"kind": self.name, "location": location,
                    "files": [{"path": _display(location, fs, p), "size": s} for p, s in files.items()]}
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return frame, f"partitions at {location} ({len(files)} files)", manifest
