"""Benchmark a bulk import + index of synthetic listings (resdb.synth) on SQLite and PostgreSQL: rows/s,
database time vs index time (the rebuild through `SearchIndex.rebuild`), peak memory, and a new host
joining by rebuilding its index from the database. Each case runs in its own process (its own peak RSS).

    .venv/bin/python bench/bench_bulk.py --sizes 20000 --backends sqlite,postgres
    .venv/bin/python bench/bench_bulk.py --sizes 300000 --db-only   # database side only
    .venv/bin/python bench/bench_bulk.py --sizes 300000,1000000 --pg-url postgresql://postgres@127.0.0.1:5432/h_bulk
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/h_bulk"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _database(backend: str, folder: Path, pg_url: str) -> tuple[str, str | None]:
    """A fresh database URL (PostgreSQL: a new schema in the bench database) and the schema to drop."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'bench.sqlite3'}", None
    from sqlalchemy import create_engine, text

    schema = f"b_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in pg_url else "?"
    return f"{pg_url}{separator}options=-csearch_path%3D{schema}", schema


def _drop(schema: str | None, pg_url: str) -> None:
    if schema:
        from sqlalchemy import create_engine, text

        admin = create_engine(pg_url)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run_case(
    backend: str, size: int, pg_url: str, folder: Path, db_only: bool = False
) -> dict[str, Any]:
    from resdb.demo import load_districts
    from resdb.directory import Directory
    from resdb.search import SearchIndex
    from resdb.synth import synthetic_listings

    url, schema = _database(backend, folder, pg_url)
    try:
        directory = Directory.open(url, folder / "host-a")
        load_districts(directory, ("16211",))
        index_seconds = [0.0]
        original_rebuild = SearchIndex.rebuild

        def drain(self: SearchIndex, docs: Any, *args: Any, **kwargs: Any) -> int:
            """--db-only: read the rebuild's rows (the database side), index none of them."""
            count = sum(1 for _ in docs)
            original_rebuild(self, iter(()), *args, **kwargs)
            return count

        def timed_rebuild(self: SearchIndex, *args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            try:
                return (drain if db_only else original_rebuild)(self, *args, **kwargs)
            finally:
                index_seconds[0] += time.perf_counter() - started

        SearchIndex.rebuild = timed_rebuild  # type: ignore[method-assign]
        records = ((n + 2, row) for n, row in enumerate(synthetic_listings(size)))
        started = time.perf_counter()
        report = directory.import_records(
            records, actor="bench", source_name="synthetic.json", status="published"
        )
        total = time.perf_counter() - started
        assert report.written and report.created == size, report.as_dict()
        import_index = index_seconds[0]
        # A new web host joins: an empty index folder, rebuilt from the database.
        index_seconds[0] = 0.0
        joining = Directory(directory.engine, folder / "host-b")
        started = time.perf_counter()
        indexed = joining.reindex()
        join_seconds = time.perf_counter() - started
        joining.index.close()
        directory.index.close()
        directory.engine.dispose()
        return {
            "backend": backend,
            "index": "drained (db only)" if db_only else "whoosh",
            "listings": size,
            "import_s": round(total, 1),
            "rows_per_s": round(size / total),
            "db_s": round(total - import_index, 1),
            "index_s": round(import_index, 1),
            "join_rebuild_s": round(join_seconds, 1),
            "join_index_s": round(index_seconds[0], 1),
            "join_indexed": indexed,
            "peak_rss_mb": round(peak_mb()),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        _drop(schema, pg_url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument(
        "--db-only",
        action="store_true",
        help="drain the rebuild's rows instead of indexing them (database side only)",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        backend, size = args.case.split(":")
        with tempfile.TemporaryDirectory() as folder:
            print(
                json.dumps(run_case(backend, int(size), args.pg_url, Path(folder), args.db_only)),
                flush=True,
            )
        return
    print(f"loadavg before: {os.getloadavg()}", flush=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        for backend in args.backends.split(","):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--case",
                    f"{backend}:{size}",
                    "--pg-url",
                    args.pg_url,
                    *(["--db-only"] if args.db_only else []),
                ],
                capture_output=True,
                text=True,
            )
            print(done.stdout.strip() or done.stderr.strip()[-2000:], flush=True)


if __name__ == "__main__":
    main()
