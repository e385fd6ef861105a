"""Kind `sql`: a SELECT through SQLAlchemy 2 (PostgreSQL via psycopg 3, or any dialect installed).

The URL names host, port, database and user, never a password: usecase.yml is committed, so
the driver finds the secret itself (libpq: PGPASSWORD or ~/.pgpass). A server that cannot be
reached, a refused login or a failing query is one line naming the server (password hidden).
"""

from __future__ import annotations

from ml.data.sources.base import SourceError, SourceKind

CONNECT_TIMEOUT_S = 10


def _url(text: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(text)
    except ArgumentError as exc:
        raise SourceError(f"source.url {text!r} is not a SQLAlchemy URL: {exc}") from None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class Sql(SourceKind):
    name = "sql"
    needs = ("url", "query")
    allows = ("window",)

    def problems(self, spec):
        out = super().problems(spec)
        if spec.url:
            try:
                url = _url(spec.url)
            except SourceError as exc:
                return [*out, (("url",), str(exc))]
            if url.password:
                out.append((("url",), "source.url carries a password, and usecase.yml is committed: drop it from the "
                                      "URL and give it to the driver (PGPASSWORD, ~/.pgpass)"))
        return out

    def read(self, uc, spec, where):
        import pandas as pd
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError

        url = _url(spec.url)
        shown = url.render_as_string(hide_password=True)
        args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
        try:
            engine = create_engine(url, connect_args=args)
        except (NoSuchModuleError, ImportError) as exc:
            raise SourceError(f"SQL source {shown}: no driver for it here ({exc})") from None
        try:
            with engine.connect() as conn:
                frame = pd.read_sql_query(text(spec.query), conn)
        except DBAPIError as exc:
            what = "cannot connect" if exc.connection_invalidated or type(exc).__name__ == "OperationalError" else "query failed"
            raise SourceError(f"SQL source {shown}: {what}: {_first_line(exc)}") from None
        except SQLAlchemyError as exc:
            raise SourceError(f"SQL source {shown}: {_first_line(exc)}") from None
        finally:
            engine.dispose()
        return frame, f"SQL source {shown}", {"kind": self.name, "location": shown, "query": spec.query.strip()}
