"""Shared fixtures: a Directory on SQLite and (when a server answers) PostgreSQL, the demo data, the app."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

PG_URL = os.environ.get("RESDB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=2):
            return True
    except Exception:
        return False


PG_AVAILABLE = _pg_reachable()
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_AVAILABLE, reason="no PostgreSQL server reachable"),
        ],
    ),
]


def _schema_url(schema: str) -> str:
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def make_directory(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: a fresh, empty Directory on the named backend (PostgreSQL in its own schema)."""
    from sqlalchemy import create_engine, text

    from resdb.directory import Directory

    made: list[tuple[Directory, str | None]] = []

    def factory(backend: str = "sqlite", name: str = "db") -> Directory:
        instance = tmp_path / f"instance-{name}"
        schema = None
        if backend == "sqlite":
            url = f"sqlite:///{instance / 'resdb.sqlite3'}"
            instance.mkdir(parents=True, exist_ok=True)
        else:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            admin.dispose()
            url = _schema_url(schema)
        directory = Directory.open(url, instance)
        made.append((directory, schema))
        return directory

    yield factory

    for directory, schema in made:
        directory.close()
        if schema:
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def directory(make_directory, backend: str):  # type: ignore[no-untyped-def]
    """An empty directory with the districts of 射水市 and 稲城市 loaded, on each backend."""
    from resdb.demo import load_districts

    made = make_directory(backend)
    load_districts(made, ("16211", "13225"))
    return made


@pytest.fixture(scope="session")
def demo_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The full shipped demo on SQLite, shared read-only by many tests (do not write to it)."""
    from resdb.demo import load_demo
    from resdb.directory import Directory

    instance = tmp_path_factory.mktemp("demo-instance")
    made = Directory.open(f"sqlite:///{instance / 'resdb.sqlite3'}", instance)
    load_demo(made)
    yield made
    made.close()


class CliRun:
    """Runs a `resdb` command in this process (click's CliRunner over resdb.cli.main), against a
    Directory's database and instance folder, or an instance folder alone (its SQLite database)."""

    def __call__(
        self,
        *args: str,
        directory: Any = None,
        instance: Path | None = None,
        input: str | None = None,
        catch_exceptions: bool = False,
    ) -> Result:
        from resdb.cli import main

        env: dict[str, str | None] = {}
        if directory is not None:
            env = {
                "RESDB_INSTANCE": str(directory.instance_dir),
                "RESDB_DATABASE_URL": directory.engine.url.render_as_string(hide_password=False),
            }
        elif instance is not None:
            env = {"RESDB_INSTANCE": str(instance), "RESDB_DATABASE_URL": ""}
        return CliRunner().invoke(
            main, list(args), env=env, input=input, catch_exceptions=catch_exceptions
        )


@pytest.fixture(scope="session")
def cli() -> CliRun:
    """`cli("search", "さろん", "--json", instance=path)`: the command's Result (output, exit_code)."""
    return CliRun()
