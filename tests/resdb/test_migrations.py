"""A deployed database upgrades in place: data written at an older schema survives `alembic upgrade`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from resdb.db import alembic_config, make_engine
from tests.conftest import BACKENDS, PG_URL, _schema_url


@contextmanager
def empty_database(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    else:
        schema = f"m_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = _schema_url(schema)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_first_revision_keeps_data(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path) as engine:
        command.upgrade(alembic_config(engine), "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO \"user\" (email, role, active, created_at) VALUES ('a@example.jp', 'editor', true, CURRENT_TIMESTAMP)"
                )
            )
        command.upgrade(alembic_config(engine), "head")
        assert {"audit_log", "case", "placement", "change_request"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as conn:
            assert conn.execute(text('SELECT email, failed_logins FROM "user"')).all() == [
                ("a@example.jp", 0)
            ]
        command.downgrade(alembic_config(engine), "0001")
        assert "case" not in set(inspect(engine).get_table_names())


def test_changes_queued_before_the_change_log_are_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """0004 turns the old delete-on-read outbox into the change log without losing a queued change."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        command.upgrade(alembic_config(engine), "0003")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO index_outbox (listing_id) VALUES ('queued-a'), ('queued-b')")
            )
        command.upgrade(alembic_config(engine), "0004")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, listing_id FROM change_log ORDER BY seq")).all()
        assert [row[1] for row in rows] == ["queued-a", "queued-b"] and rows[0][0] < rows[1][0]
        assert "index_outbox" not in set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_build_the_schema_the_models_declare(backend: str, tmp_path: Path) -> None:
    """`alembic upgrade head` on an empty database gives exactly the tables, columns, types, indexes
    and constraints of resdb.models (a model change without its migration fails here)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import resdb.models  # noqa: F401  (registers the tables)

    with empty_database(backend, tmp_path) as engine:
        command.upgrade(alembic_config(engine), "head")
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables  # the comparison looked at this schema
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            drift = compare_metadata(context, SQLModel.metadata)
        assert drift == [], f"models and migrations differ (add a migration): {drift}"
