"""The one owner of the database engine and sessions (SQLite by default, PostgreSQL by URL) and migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine

from resdb import config

if TYPE_CHECKING:  # alembic is imported only when migrating
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True
        )
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def plan_for_values(connection: Connection | Session) -> None:
    """PostgreSQL: plan this transaction's statements for their values every time (no cached generic
    plan). psycopg prepares a statement after a few runs and PostgreSQL then reuses one generic plan; an
    `id IN (…500 ids…)` first planned while the table was nearly empty keeps its sequential scan (each
    row compared with every id, unhashed) as a bulk import grows the table to hundreds of thousands of
    rows. No effect on SQLite."""
    bind = connection.get_bind() if isinstance(connection, Session) else connection
    if bind.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


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
