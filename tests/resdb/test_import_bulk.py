"""The bulk import path on SQLite and PostgreSQL: the same rows, history, audit and change log as writing one
row per transaction; bad rows named by row and field with nothing lost; a crash between batches leaves
database and index consistent."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from resdb import importing
from resdb.directory import Directory
from resdb.models import AuditEntry, ChangeLog, ListingHistory
from resdb.search import SearchQuery
from resdb.synth import synthetic_listings
from resdb.validation import validate_listing

SHINMINATO = (36.7236, 137.0991)  # inside a 射水市 町字


def rows(count: int) -> list[tuple[int, dict[str, Any]]]:
    """Synthetic rows, a third with a point but no 町字 (placed by point), a few by address only."""
    made = []
    for n, row in enumerate(synthetic_listings(count, seed=7)):
        if n % 3 == 0:
            row.pop("district", None)
            row["lat"], row["lon"] = SHINMINATO[0] + n * 1e-5, SHINMINATO[1]
        if n % 7 == 0:
            row.pop("lat")
            row.pop("lon")
            row.pop("district", None)
            row["address"] = "富山県射水市戸破2475番地"
        made.append((n + 2, row))
    return made


def timeless(snapshot: dict[str, Any] | None) -> str:
    return repr(snapshot and {k: v for k, v in snapshot.items() if k != "updated_at"})


def stored(directory: Directory) -> dict[str, Any]:
    """What the import left: rows, history, change-log ids and the audit's counts (timestamps left out)."""
    listings = {
        x["id"]: {k: v for k, v in x.items() if k not in {"updated_at"}}
        for x in directory.all_listings(include_unpublished=True)
    }
    with directory.engine.connect() as connection:
        history = sorted(
            (
                h.listing_id,
                h.version,
                h.action,
                h.actor,
                timeless(h.before),
                timeless(h.after),
                h.note,
            )
            for h in connection.execute(select(ListingHistory.__table__)).all()  # type: ignore[attr-defined]
        )
        logged = sorted(connection.execute(select(ChangeLog.listing_id)).scalars())
        audits = [
            a.detail
            for a in connection.execute(
                select(AuditEntry.__table__).where(AuditEntry.__table__.c.action == "import")  # type: ignore[attr-defined]
            ).all()
        ]
    return {"listings": listings, "history": history, "logged": logged, "audits": audits}


def audit_total(details: list[str], word: str) -> int:
    return sum(int(d.split(f"{word} ")[1].split(",")[0]) for d in details)


def test_bulk_writes_what_one_row_per_transaction_writes(
    make_directory: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdb.demo import load_districts

    results = []
    for name, batch in (("one-by-one", 1), ("bulk", 5000)):
        directory = make_directory(backend, name)
        load_districts(directory, ("16211",))
        monkeypatch.setattr(importing, "IMPORT_BATCH", batch)
        monkeypatch.setattr(importing, "PLACE_BATCH", batch)
        first = directory.import_records(rows(40), actor="t", source_name="a.json")
        changed = [(n, {**row, "capacity": 99}) for n, row in rows(40)[:15]]
        second = directory.import_records(changed, actor="t", source_name="b.json")
        assert (first.created, second.updated, second.unchanged) == (40, 15, 0)
        results.append(stored(directory))
        assert directory.search(SearchQuery(q="合成", limit=1))["total"] == 40
    one, bulk = results
    assert one["listings"] == bulk["listings"]
    assert one["history"] == bulk["history"]
    ids = [f"syn-7-{n:06d}" for n in range(40)]
    assert one["logged"] == bulk["logged"] == sorted(ids + ids[:15])
    for found in (one, bulk):
        assert audit_total(found["audits"], "created") == 40
        assert audit_total(found["audits"], "updated") == 15
    assert len(one["audits"]) == 55 and len(bulk["audits"]) == 2


def test_points_are_placed_in_a_batch_as_one_by_one(directory: Directory) -> None:
    gazetteer = directory.gazetteer()
    batch = []
    for n, raw in rows(60):
        clean, problems = validate_listing(raw, n)
        assert not problems
        batch.append((n, clean))
    single = [(n, dict(clean)) for n, clean in batch]
    assert directory.place_many(batch, gazetteer) == {}
    for n, clean in single:
        assert directory.place(clean, n, gazetteer) == []
    assert [c for _, c in batch] == [c for _, c in single]
    assert any(c.get("district") and c["lat"] < 36.8 for _, c in batch)


def test_a_bad_row_is_named_and_nothing_is_lost(directory: Directory) -> None:
    records = rows(20)
    records[11] = (records[11][0], {**records[11][1], "lat": 95.0})
    report = directory.import_records(records, actor="t", source_name="bad.json")
    assert not report.written and directory.published_count() == 0
    assert [(p.row, p.field) for p in report.problems] == [(13, "lat")]
    report = directory.import_records(
        records, actor="t", source_name="bad.json", good_rows_only=True
    )
    assert report.written and report.skipped_rows == [13] and report.created == 19
    assert directory.published_count() == 19


def test_a_crash_between_batches_leaves_database_and_index_consistent(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "IMPORT_BATCH", 10)
    seen = {"n": 0}

    def power_cut(_session: Any, _before: Any, _after: Any) -> None:
        seen["n"] += 1
        if seen["n"] == 25:  # inside the third batch
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        directory.import_records(rows(40), actor="t", source_name="cut.json", hook=power_cut)
    assert directory.published_count() == 20  # two whole batches, the third rolled back
    with directory.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ListingHistory)).one()[0] == 20
        assert connection.execute(select(func.count()).select_from(ChangeLog)).one()[0] == 20
    assert directory.search(SearchQuery(q="合成", limit=1))["total"] == 20  # the follower caught up
    assert directory.ensure_ready() == "ok"
    report = directory.import_records(rows(40), actor="t", source_name="again.json")
    assert (report.created, report.unchanged) == (20, 20)
    assert directory.search(SearchQuery(q="合成", limit=1))["total"] == 40


def test_insert_many_stores_what_an_insert_statement_stores(directory: Directory) -> None:
    """COPY (PostgreSQL) and the tuple executemany (SQLite) store the same values as SQLAlchemy's own
    insert, an aware time in a non-UTC session included; a duplicate key is SQLAlchemy's IntegrityError."""
    from datetime import UTC, datetime

    from sqlalchemy import Text, text
    from sqlalchemy.exc import IntegrityError

    from resdb.db import insert_many, write_session

    table = ListingHistory.__table__  # type: ignore[attr-defined]
    at = datetime(2026, 3, 1, 23, 30, 5, tzinfo=UTC)
    row = {
        "listing_id": "same",
        "version": 1,
        "action": "import",
        "actor": "試験",
        "at": at,
        "before": None,
        "after": {"name": "ふれあいサロン", "targets": ["elderly"], "n": 1.5},
        "note": None,
    }
    with write_session(directory.engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL TimeZone = 'Asia/Tokyo'"))
        session.execute(table.insert(), [{**row, "version": 1}])
        insert_many(session, table, [{**row, "version": 2}])
    as_text = directory.engine.dialect.name == "postgresql"  # the stored text, not parsed values
    columns = [table.c[c].cast(Text) if as_text else table.c[c] for c in row if c != "version"]
    with directory.engine.connect() as connection:
        stored = connection.execute(select(*columns).order_by(table.c.version)).all()
    assert len(stored) == 2 and stored[0] == stored[1]
    with pytest.raises(IntegrityError), write_session(directory.engine) as session:
        insert_many(session, table, [{**row, "id": 1}])
