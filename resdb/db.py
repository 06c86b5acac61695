"""The one owner of the database engine and sessions (SQLite by default, PostgreSQL by URL) and migrations."""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import DateTime, Table, bindparam, cast, event, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine

from resdb import config

if TYPE_CHECKING:  # alembic is imported only when migrating
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")
# Facts read once per web request (change-log head, districts' version, outcomes' revision): every
# cache a request consults checks the same head instead of reading it again. Any commit in the request
# forgets them (the request then reads its own write). None outside a request: always read.
_REQUEST_FACTS: ContextVar[dict[tuple[int, str], Any] | None] = ContextVar(
    "resdb_request_facts", default=None
)


def begin_request_facts() -> None:
    _REQUEST_FACTS.set({})


def end_request_facts() -> None:
    _REQUEST_FACTS.set(None)


def in_request() -> bool:
    """True inside a web request (its facts are read once and remembered)."""
    return _REQUEST_FACTS.get() is not None


def request_fact(engine: Engine, name: str, read: Callable[[], T]) -> T:
    """`read()`, remembered for the rest of the current web request (read every time outside one)."""
    facts = _REQUEST_FACTS.get()
    if facts is None:
        return read()
    key = (id(engine), name)
    if key not in facts:
        facts[key] = read()
    value: T = facts[key]
    return value


@event.listens_for(Engine, "commit")
def _forget_request_facts(_connection: Connection) -> None:
    facts = _REQUEST_FACTS.get()
    if facts:
        facts.clear()


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys; write transactions take the lock up front (BEGIN IMMEDIATE)
    so two writers never deadlock upgrading a read lock."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | None = None) -> Engine:
    url = url or config.database_url()
    if url.startswith("sqlite"):
        # hide_parameters: a failed statement is logged without its values (they can be personal data).
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 15}, hide_parameters=True
        )
        _configure_sqlite(engine)
    else:
        # psycopg prepares a statement after a few runs, and PostgreSQL may then reuse one generic
        # plan for it: an `id IN (…500 ids…)` first planned while a table was nearly empty kept its
        # sequential scan while an import grew the table to a million rows. Every statement is
        # planned for its values instead (prepared statements still save the parsing).
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            hide_parameters=True,
            connect_args={"options": _with_option(url, "-c plan_cache_mode=force_custom_plan")},
        )
    return engine


def _with_option(url: str, option: str) -> str:
    """The URL's libpq `options` (e.g. a search_path) with `option` added: connect_args replace them."""
    given = make_url(url).query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    return f"{given} {option}" if given else option


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start (SQLite) and commits on exit."""
    bind = engine.execution_options(sqlite_immediate=True) if is_sqlite(engine) else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def refresh_statistics(engine: Engine, tables: Sequence[Table]) -> None:
    """PostgreSQL: fresh planner statistics for tables a bulk write just grew (autovacuum samples them
    only later; until then the planner guesses a few dozen rows and, for the rebuild's paged read, sorts
    every row for every page). A failure is logged, not raised: the rows are committed. No-op on SQLite."""
    if engine.dialect.name != "postgresql":
        return
    preparer = engine.dialect.identifier_preparer
    try:
        with engine.begin() as connection:
            connection.execute(
                text("ANALYZE " + ", ".join(preparer.format_table(t) for t in tables))
            )
    except DBAPIError:
        log.warning("ANALYZE after a bulk write failed", exc_info=True)


def _is_datetime(column: Any) -> bool:
    """A DateTime column, or a type decorating one (sqlmodel's UTCDateTime)."""
    return isinstance(column.type, DateTime) or isinstance(
        getattr(column.type, "impl", None), DateTime
    )


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table` inside the session's transaction: what
    `session.execute(table.insert(), rows)` stores, without SQLAlchemy's work per row and statement.
    Each value passes once through its column's own bind processor (the same conversion), then
    PostgreSQL takes the rows by COPY and SQLite by one executemany of tuples. Columns left out get
    their server default (an autoincrement id). Errors come back as SQLAlchemy's, values hidden."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = [c for c in table.c if c.name in rows[0]]
    processors: list[Callable[[Any], Any] | None] = [
        c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns
    ]
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.quote(c.name) for c in columns)
    target = preparer.format_table(table)
    postgres = dialect.name == "postgresql"
    stored_times: dict[datetime, datetime] = {}

    def stored_time(value: datetime) -> datetime:
        """An aware datetime as a TIMESTAMP column stores it: the server converts it to its own time
        zone when it casts a bound value, but COPY would drop the offset, so convert it the same way."""
        if value not in stored_times:
            stored_times[value] = connection.execute(
                select(cast(bindparam("at", value, DateTime(timezone=True)), DateTime()))
            ).scalar_one()
        return stored_times[value]

    pick = operator.itemgetter(*[c.name for c in columns])
    single = len(columns) == 1  # itemgetter of one name returns the value, not a tuple
    steps = [(i, process) for i, process in enumerate(processors) if process is not None]
    times = [i for i, c in enumerate(columns) if postgres and _is_datetime(c)]

    def converted(row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = [pick(row)] if single else list(pick(row))
        for i, process in steps:  # only the columns whose type converts its values
            values[i] = process(values[i])
        for i in times:
            value = values[i]
            if isinstance(value, datetime) and value.tzinfo is not None:
                values[i] = stored_time(value)
        return tuple(values)

    raw = connection.connection.driver_connection
    if postgres:
        statement = f"COPY {target} ({names}) FROM STDIN"
    else:
        statement = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' * len(columns))})"
    try:
        if postgres:
            values = [converted(row) for row in rows]  # before COPY holds the connection
            with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                for row_values in values:
                    copy.write_row(row_values)
        else:
            cursor = raw.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(statement, [converted(row) for row in rows])
            finally:
                cursor.close()
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            statement,
            None,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=dialect,
            ismulti=True,
        ) from error


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def ensure_schema(engine: Engine) -> None:
    """Upgrade on first use; cheap when already at head."""
    tables = set(inspect(engine).get_table_names())
    if "listing" not in tables or "alembic_version" not in tables:
        upgrade(engine)
        return
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        upgrade(engine)
