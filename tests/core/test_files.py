"""Owner-only state: `private_dir`, `make_tree_private`, private `atomic_write`, and local blobs."""

from __future__ import annotations

from core.files import atomic_write, make_tree_private, private_dir
from core.storage import Blobs
from tests.modes import mode, permissive_umask  # noqa: F401 (autouse: every test here)


def test_private_dir_creates_missing_parents_owner_only_and_leaves_existing_ones(tmp_path):
    tmp_path.chmod(0o755)
    leaf = private_dir(tmp_path / "state" / "envs" / "dev")
    assert leaf == tmp_path / "state" / "envs" / "dev"
    assert [mode(p) for p in (tmp_path / "state", tmp_path / "state" / "envs", leaf)] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # not ours to change


def test_private_dir_tightens_an_existing_directory(tmp_path):
    folder = tmp_path / "storage"
    folder.mkdir(mode=0o755)
    private_dir(folder)
    assert mode(folder) == 0o700


def test_make_tree_private_tightens_every_dir_and_file_but_not_sockets_or_links(tmp_path):
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "data.db").write_text("x")
    (root / "top.json").write_text("{}")
    outside = tmp_path / "outside.txt"
    outside.write_text("not in the tree")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)
    make_tree_private(root)
    assert {mode(p) for p in (root, root / "a", root / "a" / "b")} == {0o700}
    assert {mode(p) for p in (root / "a" / "b" / "data.db", root / "top.json")} == {0o600}
    assert mode(outside) == 0o644  # a symlink's target is not part of the tree


def test_atomic_write_of_a_private_file_creates_its_parents_private(tmp_path):
    path = atomic_write(tmp_path / "run" / "programs" / "x.conf", "secret", mode=0o600)
    assert mode(path) == 0o600
    assert mode(tmp_path / "run") == 0o700 and mode(tmp_path / "run" / "programs") == 0o700


def test_atomic_write_without_a_mode_keeps_ordinary_parents(tmp_path):
    atomic_write(tmp_path / "public" / "x.txt", "hello")
    assert mode(tmp_path / "public") == 0o755


def test_local_blobs_are_owner_only(tmp_path):
    blobs = Blobs((tmp_path / "storage").as_uri())
    blobs.write_text("state/bundle/deployment.json", "{}")
    assert blobs.create("state/bundle/lock", "me")
    source = tmp_path / "wheel.whl"
    source.write_bytes(b"zip")
    blobs.upload(source, "artifacts/wheels/wheel.whl")
    storage = tmp_path / "storage"
    for key in ("state/bundle/deployment.json", "state/bundle/lock", "artifacts/wheels/wheel.whl"):
        assert mode(storage / key) == 0o600, key
    for folder in ("state", "state/bundle", "artifacts", "artifacts/wheels"):
        assert mode(storage / folder) == 0o700, folder
    assert blobs.read_text("state/bundle/deployment.json") == "{}"
