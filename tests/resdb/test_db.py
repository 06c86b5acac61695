"""The database layer as PostgreSQL runs it: statements psycopg prepares are planned for their values
every time, so a plan made while a table was nearly empty is never reused after it has grown."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from resdb.db import make_engine
from tests.conftest import PG_AVAILABLE, PG_URL


@pytest.mark.skipif(not PG_AVAILABLE, reason="no PostgreSQL server reachable")
def test_prepared_statements_never_reuse_a_generic_plan() -> None:
    engine = make_engine(PG_URL)
    table = f"plan_{uuid.uuid4().hex[:10]}"
    ids = {f"k{i}": f"id-{i}" for i in range(50)}
    lookup = text(f"SELECT count(*) FROM {table} WHERE id IN ({', '.join(':' + k for k in ids)})")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE TABLE {table} (id text PRIMARY KEY, body text)"))
            for _ in range(12):  # psycopg prepares it after 5 runs; PostgreSQL may then go generic
                conn.execute(lookup, ids)
            conn.execute(
                text(
                    f"INSERT INTO {table} SELECT 'id-' || g, repeat('x', 50) "
                    "FROM generate_series(1, 20000) g"
                )
            )
            conn.execute(text(f"ANALYZE {table}"))
            assert conn.execute(lookup, ids).scalar() == 49  # id-1 … id-49
            plans = conn.execute(
                text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE :pattern"
                ),
                {"pattern": f"%FROM {table} WHERE id IN%"},
            ).all()
            assert plans, "psycopg prepared the statement"
            assert all(generic == 0 for generic, _ in plans), plans
            conn.execute(text(f"DROP TABLE {table}"))
            conn.commit()
    finally:
        engine.dispose()


@pytest.mark.skipif(not PG_AVAILABLE, reason="no PostgreSQL server reachable")
def test_options_in_the_database_url_are_kept() -> None:
    schema = f"s_{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in PG_URL else "?"
    engine = make_engine(f"{PG_URL}{separator}options=-csearch_path%3D{schema}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW search_path")).scalar() == schema
            assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    finally:
        engine.dispose()
