"""The serving-token file both the gate and the launcher's proxy read (`ml.serving.tokens`)."""

from __future__ import annotations

import hashlib
import json
import os
import time

from ml.serving.tokens import TokenSet, bearer


def _write(path, *tokens: str, mtime_ns: int) -> None:
    path.write_text(json.dumps([hashlib.sha256(t.encode()).hexdigest().upper() for t in tokens]))
    os.utime(path, ns=(mtime_ns, mtime_ns))  # a distinct mtime, as a real rotation has


def test_a_rotated_token_file_is_read_again_and_only_its_tokens_pass(tmp_path):
    path = tmp_path / "tokens.json"
    _write(path, "old", mtime_ns=1_000_000_000)
    tokens = TokenSet(path)
    assert tokens.allows("old") and not tokens.allows("new")
    _write(path, "new", mtime_ns=2_000_000_000)
    assert tokens.allows("new") and not tokens.allows("old")


def test_a_revoked_token_stops_working_once_the_recheck_interval_has_passed(tmp_path):
    path = tmp_path / "tokens.json"
    _write(path, "old", mtime_ns=1_000_000_000)
    tokens = TokenSet(path, recheck_s=0.2)
    assert tokens.allows("old")
    _write(path, "other", mtime_ns=2_000_000_000)  # "old" revoked
    time.sleep(0.25)
    assert not tokens.allows("old") and tokens.allows("other")
    path.unlink()  # the file gone: nothing passes once the interval has passed
    time.sleep(0.25)
    assert not tokens.allows("other")


def test_no_file_no_token_or_an_empty_token_lets_nothing_through(tmp_path):
    assert not TokenSet(None).allows("any")
    assert not TokenSet(tmp_path / "missing.json").allows("any")
    path = tmp_path / "tokens.json"
    _write(path, "", mtime_ns=1_000_000_000)  # even a listed digest of the empty string
    assert not TokenSet(path).allows("")


def test_bearer_reads_only_a_bearer_authorization_header():
    def scope(value: bytes | None) -> dict:
        return {"headers": [(b"authorization", value)] if value is not None else []}

    assert bearer(scope(b"Bearer  abc ")) == "abc"
    assert bearer(scope(b"bearer abc")) == "abc"
    assert bearer(scope(b"Basic abc")) == ""
    assert bearer(scope(None)) == ""
