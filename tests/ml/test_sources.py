"""Source kinds (ml/data/sources): partitions on a disk and in a bucket, a SQL query against a real
PostgreSQL server, the window, and each bad input as one clear message. No MLflow needed."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest

from ml.data import sources
from ml.data.sources import SourceError, Where
from ml.usecase import load_use_case
from ml.usecase.contract import SourceSpec
from tests.ml import pgserver
from tests.ml.harness import PROJECT
from usecases.fraud.generate import generate_transactions


@pytest.fixture(scope="module")
def fraud():
    return load_use_case("fraud", root=PROJECT)


def day(rows: int, seed: int, start: str) -> pd.DataFrame:
    """`rows` transactions of one day starting at `start`."""
    return generate_transactions(rows, seed=seed, days=1, start=start)


def land(root, name: str, frame: pd.DataFrame) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path, index=False)


def md5(frame: pd.DataFrame) -> str:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return hashlib.md5(buf.getvalue()).hexdigest()


def snap(uc, tmp_path, storage_root=None, **spec):
    return sources.snapshot(uc, SourceSpec(**spec), Where(tmp_path, storage_root))


def test_partitions_of_a_directory_are_read_at_any_depth_and_the_window_slides(fraud, tmp_path):
    land(tmp_path, "landing/date=2026-03-01/part-0.parquet", day(300, 1, "2026-03-01"))
    land(tmp_path, "landing/date=2026-03-02/part-0.parquet", day(300, 2, "2026-03-02"))
    first = snap(fraud, tmp_path, kind="partitions", path="landing", window={"days": 2})
    assert len(first.frame) == 600 and [f["path"].rsplit("landing/", 1)[1] for f in first.manifest["files"]] == [
        "date=2026-03-01/part-0.parquet", "date=2026-03-02/part-0.parquet"]
    assert first.frame["timestamp"].is_monotonic_increasing
    # a new day lands: the 2-day window ends at its newest event, so the first day falls out
    land(tmp_path, "landing/date=2026-03-03/part-0.parquet", day(300, 3, "2026-03-03"))
    second = snap(fraud, tmp_path, kind="partitions", path="landing", window={"days": 2})
    assert second.manifest["rows_read"] == 900 and 600 <= len(second.frame) < 700  # 2 days back from the newest event
    assert second.frame["timestamp"].min() > pd.Timestamp("2026-03-01 23:00")
    assert md5(second.frame) != md5(first.frame)
    # nothing new: the same bytes, so the same DVC data version
    assert md5(snap(fraud, tmp_path, kind="partitions", path="landing", window={"days": 2}).frame) == md5(second.frame)


def test_a_glob_of_csv_partitions_and_a_single_file(fraud, tmp_path):
    land(tmp_path, "feed/a.csv", day(50, 1, "2026-03-01"))
    land(tmp_path, "feed/b.csv", day(50, 2, "2026-03-02"))
    land(tmp_path, "feed/_SUCCESS.csv", day(5, 3, "2026-03-03"))  # markers are not partitions
    assert len(snap(fraud, tmp_path, kind="partitions", path="feed/*.csv").frame) == 100
    assert len(snap(fraud, tmp_path, kind="file", path=str(tmp_path / "feed" / "a.csv")).frame) == 50


def test_the_generator_has_no_snapshot(fraud, tmp_path):
    assert snap(fraud, tmp_path, kind="generator", function="usecases.fraud.generate:generate_transactions") is None


@pytest.mark.parametrize("setup, spec, message", [
    (lambda root: None, {"kind": "partitions", "path": "nowhere"}, "partitions at {root}/nowhere: no parquet/csv file there"),
    (lambda root: (root / "empty").mkdir(), {"kind": "partitions", "path": "empty"}, "no parquet/csv file there"),
    (lambda root: (root / "p").mkdir() or (root / "p" / "x.parquet").write_bytes(b"not parquet"),
     {"kind": "partitions", "path": "p"}, "cannot read {root}/p/x.parquet: "),
    (lambda root: land(root, "p/x.parquet", day(20, 1, "2026-03-01").drop(columns=["amount"])),
     {"kind": "partitions", "path": "p"}, "partition {root}/p/x.parquet lacks declared columns ['amount']"),
    (lambda root: land(root, "p/x.parquet", day(20, 1, "2026-03-01").head(0)),
     {"kind": "partitions", "path": "p"}, "no rows"),
    (lambda root: None, {"kind": "file", "path": "gone.parquet"}, "source file {root}/gone.parquet: no such file"),
    (lambda root: None, {"kind": "file", "path": "{storage}/x.parquet"}, "{storage} is the env's storage, known only inside a job task"),
])
def test_each_bad_source_is_one_clear_message(fraud, tmp_path, setup, spec, message):
    setup(tmp_path)
    with pytest.raises(SourceError) as err:
        snap(fraud, tmp_path, **spec)
    assert message.format(root=tmp_path, storage="{storage}") in str(err.value)
    assert "\n" not in str(err.value)


def test_partitions_on_object_storage(fraud, tmp_path, monkeypatch):
    from tests.s3server import CREDENTIALS, s3_client, s3_server

    with s3_server(tmp_path / "s3.log") as endpoint:
        for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(key, value)
        s3_client(endpoint).create_bucket(Bucket="feeds")
        for i, start in enumerate(("2026-03-01", "2026-03-02")):
            buf = io.BytesIO()
            day(100, i, start).to_parquet(buf, index=False)
            s3_client(endpoint).put_object(Bucket="feeds", Key=f"prod/landing/fraud/{start}.parquet", Body=buf.getvalue())
        got = snap(fraud, tmp_path, storage_root="s3://feeds/prod", kind="partitions", path="{storage}/landing/fraud")
        assert len(got.frame) == 200 and got.manifest["files"][0]["path"] == "s3://feeds/prod/landing/fraud/2026-03-01.parquet"
        with pytest.raises(SourceError, match="no parquet/csv file there"):
            snap(fraud, tmp_path, storage_root="s3://feeds/prod", kind="partitions", path="{storage}/landing/other")
    # the server is gone: one line naming the location, not a botocore traceback
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(SourceError, match=r"^partitions at s3://feeds/prod/landing/fraud: "):
        snap(fraud, tmp_path, storage_root="s3://feeds/prod", kind="partitions", path="{storage}/landing/fraud")


# --- SQL, against a real PostgreSQL server ---------------------------------------------------------

@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    if not pgserver.installed():
        pytest.skip("PostgreSQL server not installed (scripts/postgres.sh)")
    with pgserver.postgres_server(tmp_path_factory.mktemp("pg")) as server:
        from sqlalchemy import create_engine

        engine = create_engine(f"postgresql+psycopg://{pgserver.USER}:{pgserver.PASSWORD}@127.0.0.1:{server.port}/"
                               f"{pgserver.DATABASE}")
        frame = pd.concat([day(200, 1, "2026-03-01"), day(200, 2, "2026-03-05")], ignore_index=True)
        frame.sample(frac=1.0, random_state=0).to_sql("transactions", engine, index=False)  # stored in no order
        engine.dispose()
        yield server


def test_a_sql_query_is_snapshotted_in_a_stable_order_with_its_window(fraud, pg, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", pgserver.PASSWORD)
    query = "SELECT * FROM transactions"
    everything = snap(fraud, tmp_path, kind="sql", url=pg.url, query=query)
    assert len(everything.frame) == 400 and list(everything.frame.columns) == fraud.raw_columns
    assert everything.description == f"SQL source {pg.url}"
    recent = snap(fraud, tmp_path, kind="sql", url=pg.url, query=query, window={"days": 2})
    assert len(recent.frame) == 200 and recent.frame["timestamp"].min() >= pd.Timestamp("2026-03-05")
    # the same rows in another order land the same bytes
    reordered = snap(fraud, tmp_path, kind="sql", url=pg.url, query=query + " ORDER BY amount DESC")
    assert md5(reordered.frame) == md5(everything.frame)


@pytest.mark.parametrize("change, message", [
    ({"query": "SELECT transaction_id, timestamp FROM transactions"}, "lacks declared columns ['customer_id', "),
    ({"query": "SELECT * FROM transaction"}, 'query failed: relation "transaction" does not exist'),
    ({"query": "SELECT * FROM transactions WHERE false"}, "no rows"),
    ({"password": "wrong"}, 'cannot connect: connection failed: connection to server at "127.0.0.1", port {port} failed: '
                            'FATAL:  password authentication failed for user "ingest"'),
])
def test_sql_bad_input_is_one_line(fraud, pg, tmp_path, monkeypatch, change, message):
    monkeypatch.setenv("PGPASSWORD", change.get("password", pgserver.PASSWORD))
    with pytest.raises(SourceError) as err:
        snap(fraud, tmp_path, kind="sql", url=pg.url, query=change.get("query", "SELECT * FROM transactions"))
    assert message.format(port=pg.port) in str(err.value) and "\n" not in str(err.value)


def test_a_sql_server_that_is_down_is_one_line_naming_it(fraud, tmp_path, monkeypatch):
    from tests.ports import free_port

    monkeypatch.setenv("PGPASSWORD", "x")
    port = free_port()
    url = f"postgresql+psycopg://ingest@127.0.0.1:{port}/sales"
    with pytest.raises(SourceError) as err:
        snap(fraud, tmp_path, kind="sql", url=url, query="SELECT 1")
    assert str(err.value).startswith(f"SQL source {url}: cannot connect: ") and "Connection refused" in str(err.value)


# --- the declaration, as `bundle validate` checks it (file:line) -----------------------------------

def _tiny(tmp_path, source: str) -> list[str]:
    import textwrap

    from ml.usecase.load import check
    from tests.usecase.conftest import FEATURES, MODEL, PARAMS, ROWS, USECASE

    base = tmp_path / "usecases" / "tiny"
    base.mkdir(parents=True)
    (tmp_path / "usecases" / "__init__.py").write_text("")
    text = USECASE.replace("  timestamp: ts\n", "").replace("  label: y\n", "  label: y\n  timestamp: ts\n")
    text = text.replace("    y: {type: int", "    ts: {type: datetime}\n    y: {type: int")
    text = text.replace("source:\n  kind: file\n  path: usecases/tiny/rows.csv\n", textwrap.dedent(source))
    for name, body in {"usecase.yml": text, "params.yaml": PARAMS, "features.py": FEATURES, "model.py": MODEL,
                       "__init__.py": "", "rows.csv": ROWS.replace("y\n", "ts,y\n").replace(",0\n", ",2026-03-01,0\n")
                       .replace(",1\n", ",2026-03-02,1\n")}.items():
        (base / name).write_text(body)
    lines = text.splitlines()
    return [d.render().replace("usecases/tiny/usecase.yml:", "L") for d in check(tmp_path, "tiny")], lines


def _line(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_a_sound_declaration_per_target_checks_clean(tmp_path):
    diags, _ = _tiny(tmp_path, """\
        source:
          kind: file
          path: usecases/tiny/rows.csv
          targets:
            staging: {kind: partitions, path: "{storage}/landing/tiny", window: {days: 30}}
            prod:
              kind: sql
              url: postgresql+psycopg://ingest@db.internal:5432/sales
              query: SELECT * FROM rows
              window: {days: 90, anchor: now}
        """)
    assert diags == []


@pytest.mark.parametrize("source, needle, message", [
    ("source:\n  kind: partition\n  path: x\n", "kind: partition",
     f"unknown source kind 'partition' (one of: {', '.join(sources.KINDS)}) (did you mean 'partitions'?)"),
    ("source:\n  kind: sql\n  url: postgresql://ingest@db/sales\n", "source:", "a sql source names its `query`"),
    ("source:\n  kind: sql\n  url: postgresql://ingest:hunter2@db/sales\n  query: SELECT 1\n", "url:",
     "source.url carries a password, and usecase.yml is committed: drop it from the URL and give it to the driver "
     "(PGPASSWORD, ~/.pgpass)"),
    ("source:\n  kind: generator\n  function: usecases.tiny.model:make\n  window: {days: 3}\n", "window:",
     "a generator source takes no `window`"),
    ("source:\n  kind: file\n  path: usecases/tiny/rows.csv\n  window: {days: 3, column: x}\n", "window:",
     "window.column 'x' must be a datetime column"),
    ("source:\n  kind: file\n  path: usecases/tiny/rows.csv\n  targets:\n    prod: {kind: sql, query: SELECT 1}\n",
     "prod:", "a sql source names its `url`"),
    ("source:\n  kind: partitions\n  path: usecases/tiny/none\n", "path:", "source.path 'usecases/tiny/none': no parquet/csv file there"),
])
def test_each_bad_source_declaration_is_one_message_at_its_line(tmp_path, source, needle, message):
    diags, lines = _tiny(tmp_path, source)
    assert f"L{_line(lines, needle)}: {message}" in diags, diags


def test_a_new_kind_is_one_module_plus_one_registry_line(fraud, tmp_path, monkeypatch):
    """The checklist of ml/data/sources/README.md, followed with a throwaway kind."""
    (tmp_path / "memory_source.py").write_text(
        "from ml.data.sources.base import SourceKind\n"
        "from usecases.fraud.generate import generate_transactions\n\n"
        "class Memory(SourceKind):\n"
        "    name = 'memory'\n"
        "    needs = ('query',)\n"
        "    allows = ('window',)\n\n"
        "    def read(self, uc, spec, where):\n"
        "        return generate_transactions(int(spec.query), seed=1), 'memory', {'kind': 'memory'}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sources.KINDS, "memory", "memory_source:Memory")
    sources.kind.cache_clear()
    try:
        assert 0 < len(snap(fraud, tmp_path, kind="memory", query="120", window={"days": 10}).frame) < 120  # windowed
        assert sources.problems(SourceSpec(kind="memory"), fraud.spec.dataset.columns, "timestamp") == [
            (("query",), "a memory source names its `query`")]
    finally:
        sources.kind.cache_clear()
