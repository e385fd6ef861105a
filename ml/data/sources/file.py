"""Kind `file`: one parquet or csv file, in the project, at an absolute path, s3://… or {storage}/…."""

from __future__ import annotations

from ml.data.sources.base import SUFFIXES, SourceError, SourceKind, filesystem, locate, read_file


class File(SourceKind):
    name = "file"
    needs = ("path",)
    allows = ("window",)

    def problems(self, spec):
        out = super().problems(spec)
        if spec.path and not spec.path.endswith(SUFFIXES):
            out.append((("path",), f"a file source is a .parquet or .csv file, not {spec.path!r}"))
        return out

    def read(self, uc, spec, where):
        location = locate(spec.path, where)
        fs, path = filesystem(location)
        try:
            size = fs.size(path)
        except FileNotFoundError:
            raise SourceError(f"source file {location}: no such file") from None
        except Exception as exc:  # unreachable storage: one line, not a traceback
            raise SourceError(f"source file {location}: {exc}") from None
        frame = read_file(fs, path, location)
        return frame, f"file {location}", {"kind": self.name, "location": location, "files": [{"path": location, "size": size}]}
