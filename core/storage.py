"""An environment's storage as small keyed blobs, whether it is a directory or an S3 bucket.

The local platform's storage is `file://`; the kubernetes platform's is `s3://` (MinIO in
the cluster, or a bucket). Bundle state, registered jobs and code wheels go through this
one interface, so the engine does not care which. S3 connection settings come from the
usual variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL,
AWS_DEFAULT_REGION), exactly what `aws s3` or `mc` would use. On a local disk every blob
is written owner-only (files 0600, the directories it creates 0700).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import fsspec

from core.errors import ConveyorError
from core.files import PRIVATE_FILE, atomic_write, private_dir


class StorageError(ConveyorError):
    """Storage cannot be reached or used (message says which URI and why)."""


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def _s3_options() -> dict:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    opts: dict = {"config_kwargs": {"retries": {"max_attempts": 3}}}
    if endpoint:
        opts["endpoint_url"] = endpoint
    return opts


class Blobs:
    """Keys under one root URI. Writes are atomic (readers never see half a blob)."""

    def __init__(self, root_uri: str):
        self.uri = root_uri.rstrip("/")
        scheme = urlparse(self.uri).scheme
        if scheme in ("", "file"):
            self.local: Path | None = Path(urlparse(self.uri).path)
            self.fs = fsspec.filesystem("file")
            self.root = str(self.local)
        elif scheme == "s3":
            self.local = None
            try:
                self.fs = fsspec.filesystem("s3", **_s3_options())
            except ImportError:  # pragma: no cover - s3fs is a dependency
                raise StorageError("s3:// storage needs the s3fs package") from None
            self.root = self.uri.removeprefix("s3://")
        else:
            raise StorageError(f"{root_uri}: unsupported storage scheme {scheme!r} (file:// or s3://)")

    def __repr__(self) -> str:
        return f"Blobs({self.uri})"

    def child(self, *parts: str) -> Blobs:
        return Blobs("/".join([self.uri, *parts]))

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def _call(self, what: str, key: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError as exc:
            if what in ("read", "stat", "list", "delete", "download"):
                raise  # the key is absent: callers decide
            raise StorageError(f"{what} {self.uri}/{key}: {exc}") from None  # e.g. no such bucket
        except FileExistsError:
            raise
        except PermissionError as exc:
            raise StorageError(f"{what} {self.uri}/{key}: access denied ({exc})") from None
        except Exception as exc:
            # OSError from fsspec, botocore's own (no credentials, endpoint unreachable): one message
            if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore"):
                raise StorageError(f"{what} {self.uri}/{key}: {exc}") from None
            raise

    # --- read --------------------------------------------------------------------------

    def read_text(self, key: str) -> str | None:
        try:
            return self._call("read", key, self.fs.cat_file, self._path(key)).decode()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return bool(self._call("stat", key, self.fs.exists, self._path(key)))

    def list(self, prefix: str = "", dirs: bool = False) -> list[str]:
        """Names (not paths) directly under `prefix`: files, or sub-directories with `dirs=True`."""
        try:
            entries = self._call("list", prefix, self.fs.ls, self._path(prefix), detail=True, refresh=True)
        except FileNotFoundError:
            self._check_bucket()
            return []
        want = "directory" if dirs else "file"
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == want)

    def _check_bucket(self) -> None:
        """An absent prefix is normal (nothing there yet); an absent bucket is a wrong env."""
        if self.local is None:
            bucket = self.root.split("/", 1)[0]
            if not self._call("stat", "", self.fs.exists, bucket):
                raise StorageError(f"{self.uri}: bucket {bucket!r} does not exist (or these credentials cannot see it)")

    # --- write -------------------------------------------------------------------------

    def _staged(self, key: str, text: str) -> tuple[Path, Path]:
        """(final path, a temp file beside it holding `text`) on a local disk."""
        assert self.local is not None
        path = self.local / key
        if not path.parent.is_dir():
            private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "w") as fh:
            fh.write(text)
        return path, tmp

    def write_text(self, key: str, text: str) -> None:
        if self.local is not None:
            atomic_write(self.local / key, text, PRIVATE_FILE)
            return
        self._call("write", key, self.fs.pipe_file, self._path(key), text.encode())  # one PUT: atomic

    def create(self, key: str, text: str) -> bool:
        """Write only if `key` does not exist; False when it does (the basis of the deploy lock)."""
        if self.local is not None:
            path, tmp = self._staged(key, text)
            try:
                os.link(tmp, path)  # fails if it exists; readers see the whole content or nothing
                return True
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
        try:
            self.fs.pipe_file(self._path(key), text.encode(), mode="create")
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            # s3fs maps a 412 to FileExistsError only when the error names the condition;
            # servers that do not (and AWS's 409 for a racing conditional write) land here
            code = getattr(exc.__cause__, "response", {}).get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise StorageError(f"create {self.uri}/{key}: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore"):
                raise StorageError(f"create {self.uri}/{key}: {exc}") from None
            raise

    def delete(self, key: str) -> None:
        try:
            self._call("delete", key, self.fs.rm_file, self._path(key))
        except FileNotFoundError:
            pass

    def delete_tree(self, prefix: str = "") -> None:
        try:
            self._call("delete", prefix, self.fs.rm, self._path(prefix), recursive=True)
        except FileNotFoundError:
            pass

    def upload(self, local: Path, key: str) -> None:
        if self.local is not None:
            if (self.local / key).resolve() == local.resolve():
                return
            if not (self.local / key).parent.is_dir():
                private_dir((self.local / key).parent)
        self._call("upload", key, self.fs.put_file, str(local), self._path(key))
        if self.local is not None:
            os.chmod(self.local / key, PRIVATE_FILE)

    def download(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
        self._call("download", key, self.fs.get_file, self._path(key), str(tmp))
        tmp.replace(local)
