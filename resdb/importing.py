"""Importing many listings: validate and place every row, report problems by row and field, then write
rows, history, audit and change log in bulk."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, func
from sqlmodel import col, select

from resdb.audit import audit
from resdb.changelog import BULK_REINDEX_THRESHOLD, queue_for_index
from resdb.db import insert_many, refresh_statistics
from resdb.directory_base import DirectoryBase
from resdb.duplicates import DUPLICATE_CHECK_ROWS
from resdb.listings import WriteHook, listing_defaults, public_dict
from resdb.models import (
    ChangeLog,
    Listing,
    ListingHistory,
    utcnow,
)
from resdb.search import IndexBuild
from resdb.validation import Problem, validate_listing

MAX_REPORTED_PROBLEMS = 10_000  # problems kept in a report (all are counted)
PLACE_BATCH = (
    2000  # rows validated, then placed together (the gazetteer is resolved once per batch)
)
IMPORT_BATCH = 5000  # rows written per transaction (rows, history, audit and change log together)
log = logging.getLogger(__name__)
# Columns a new imported row always sets itself (their defaults are never made).
_STAMPED = frozenset({"id", "created_at", "updated_at", "organization_id"})


@dataclass
class ImportReport:
    """What an import found and did; `problems` empty means it could be (or was) written."""

    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False
    skipped_rows: list[int] = field(
        default_factory=list
    )  # rows with problems (left out by a good-rows-only import)
    problem_count: int = 0  # every problem found (only the first MAX_REPORTED_PROBLEMS are kept)
    status: str = "published"  # what new listings became

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": len(self.skipped_rows),
            "problem_count": self.problem_count,
            "skipped_rows": self.skipped_rows,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "dry_run": self.dry_run,
            "written": self.written,
            "problems": [p.as_dict() for p in self.problems],
            "warnings": [p.as_dict() for p in self.warnings],
            "likely_duplicates": self.duplicates,
        }


class Importing(DirectoryBase):
    """Bulk import (mixed into `Directory`)."""

    def import_records(
        self,
        records: Iterable[tuple[int, dict[str, Any]]],
        *,
        actor: str,
        source_name: str,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        status: str = "published",
        good_rows_only: bool = False,
        source: str | None = None,
        hook: WriteHook | None = None,
        check: Callable[[int, dict[str, Any]], list[Problem]] | None = None,
    ) -> ImportReport:
        """Import (row number, raw record) pairs: all-or-nothing, or only the rows without problems when
        `good_rows_only`. New listings become `status` (draft = for review) unless the row says otherwise;
        `source` (an organisation or document, never a file name) fills rows without 出典; `source_name`
        (the file) goes to the history only. dry_run reports and writes nothing and keeps only a few facts
        per row (records may be a lazy stream: memory stays flat however long the file). `check` names more
        problems of a valid, placed row (the dry run reports them as the real import would refuse them);
        `hook` sees each row's before/after inside the write's transaction. Rows are validated one by one
        from the field declaration and placed a batch at a time; every row is checked before anything is
        written, then the rows are written IMPORT_BATCH per transaction (see `_write_import`)."""
        report = ImportReport(dry_run=dry_run, status=status)
        cleaned: list[tuple[int, dict[str, Any]]] = []
        light: list[tuple[int, dict[str, Any]]] = []  # what the duplicate check needs (bounded)
        seen_ids: dict[str, int] = {}
        bad_rows: list[int] = []
        pending_ids: list[str] = []

        def count_pending() -> None:
            existing = self._existing_ids(pending_ids)
            report.updated += len(existing)
            report.created += len(pending_ids) - len(existing)
            pending_ids.clear()

        def problem(found: Problem) -> None:
            report.problem_count += 1
            if len(report.problems) < MAX_REPORTED_PROBLEMS:
                report.problems.append(found)

        stream = iter(records)
        while chunk := list(islice(stream, PLACE_BATCH)):
            checked_rows: list[tuple[int, dict[str, Any], list[Problem]]] = []
            for row_no, raw in chunk:
                report.total += 1
                if progress:
                    progress(1)
                if "__row_error__" in raw:
                    problem(Problem(raw.get("__row_field__", "row"), raw["__row_error__"], row_no))
                    bad_rows.append(row_no)
                    continue
                clean, problems = validate_listing(raw, row_no)
                checked_rows.append((row_no, clean, problems))
            gazetteer = self.gazetteer()  # one read per batch: districts are versioned
            placed = self.place_many(
                [(row_no, clean) for row_no, clean, problems in checked_rows if not problems],
                gazetteer,
            )
            for row_no, clean, problems in checked_rows:
                if not problems:
                    problems = placed.get(row_no, [])
                if clean.get("id"):
                    if clean["id"] in seen_ids:
                        problems.append(
                            Problem(
                                "id",
                                f"{seen_ids[clean['id']]}行目と同じ id です。id を変えるか、どちらかの行を消してください",
                                row_no,
                                clean["id"],
                            )
                        )
                    seen_ids.setdefault(clean["id"], row_no)
                if clean.get("service_area") and not problems:
                    _geometry, _resolved, unresolved = self._resolve_area(
                        clean["service_area"], clean.get("municipality_code"), gazetteer
                    )
                    for name in unresolved:
                        report.warnings.append(
                            Problem("service_area", f"地区「{name}」が見つかりません", row_no, name)
                        )
                if not problems and check is not None:
                    problems = check(row_no, clean)
                for found in problems:
                    problem(found)
                if problems:
                    bad_rows.append(row_no)
                    continue
                if not clean.get("source") and source:
                    clean["source"] = source
                if "status" not in clean:
                    clean["__new_status__"] = status
                if dry_run:
                    if len(light) < DUPLICATE_CHECK_ROWS and clean.get("lat") is not None:
                        light.append(
                            (row_no, {k: clean.get(k) for k in ("id", "name", "lat", "lon")})
                        )
                    if clean.get("id"):
                        pending_ids.append(clean["id"])
                        if len(pending_ids) >= 500:
                            count_pending()
                    else:
                        report.created += 1
                else:
                    cleaned.append((row_no, clean))
        report.skipped_rows = bad_rows
        checked = light if dry_run else cleaned[:DUPLICATE_CHECK_ROWS]
        report.duplicates = self.likely_duplicates(checked)
        if report.total > DUPLICATE_CHECK_ROWS:
            report.warnings.append(
                Problem("file", f"重複の可能性は最初の {DUPLICATE_CHECK_ROWS:,}行だけ確かめました")
            )
        if dry_run:
            count_pending()
            return report
        if (report.problems and not good_rows_only) or not cleaned:
            self._count_changes(cleaned, report)
            return report
        self._write_import(cleaned, actor, report, hook, source_name)
        report.written = True
        return report

    def _existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are stored (any status)."""
        table = Listing.__table__  # type: ignore[attr-defined]
        found: set[str] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                found.update(
                    connection.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars()
                )
        return found

    def _count_changes(
        self, cleaned: list[tuple[int, dict[str, Any]]], report: ImportReport
    ) -> None:
        existing = self._existing_ids([c["id"] for _, c in cleaned if c.get("id")])
        for _, clean in cleaned:
            if clean.get("id") in existing:
                report.updated += 1
            else:
                report.created += 1

    def _write_import(
        self,
        cleaned: list[tuple[int, dict[str, Any]]],
        actor: str,
        report: ImportReport,
        hook: WriteHook | None = None,
        source_name: str | None = None,
    ) -> None:
        """Write checked rows IMPORT_BATCH per transaction; each transaction holds its rows, their history,
        an audit entry and their change-log entries (the one door), so a crash between batches leaves
        whole batches in the database, each logged. A large import outside the web (`_ImportIndex`)
        builds a fresh search index beside the live one from each batch once it has committed, and swaps
        it in after the last one when the change log shows no other writer meanwhile; otherwise (and
        after a failure or a crash) the index follows the log once, at the end, or at the next search or
        start-up."""
        organizations: dict[str, int] = {}
        parts = (len(cleaned) + IMPORT_BATCH - 1) // IMPORT_BATCH
        committed = False
        indexing = _ImportIndex.start(self, cleaned)
        logged = 0  # change-log entries this import's batches wrote
        try:
            for part, start in enumerate(range(0, len(cleaned), IMPORT_BATCH), start=1):
                written, docs = self._write_import_batch(
                    cleaned[start : start + IMPORT_BATCH],
                    actor,
                    report,
                    hook,
                    source_name,
                    organizations,
                    f" ({part}/{parts})" if parts > 1 else "",
                    indexing is not None,
                )
                committed = True
                logged += written
                if indexing is not None:
                    indexing.build.feed(docs)  # committed rows only
            if indexing is not None:
                indexing.finish(logged)
                indexing = None
        finally:
            if indexing is not None:
                indexing.abort()
            if committed:
                if len(cleaned) >= IMPORT_BATCH:
                    refresh_statistics(
                        self.engine,
                        [Listing.__table__, ListingHistory.__table__, ChangeLog.__table__],  # type: ignore[attr-defined]
                    )
                self.try_follow_changes(wait=0.0)

    def _write_import_batch(
        self,
        batch: list[tuple[int, dict[str, Any]]],
        actor: str,
        report: ImportReport,
        hook: WriteHook | None,
        source_name: str | None,
        organizations: dict[str, int],
        part: str,
        index_docs: bool = False,
    ) -> tuple[int, list[dict[str, Any]]]:
        """One transaction: new listings and the history rows by `insert_many` (COPY on PostgreSQL),
        changed ones by one executemany update, the audit entry and the change log (queued for the
        commit hook). Stored rows are read by id only for this batch, planned for their values.
        Returns the change-log entries written and, with `index_docs`, the published listings of the
        batch as the search index holds them (written or unchanged)."""
        table = Listing.__table__  # type: ignore[attr-defined]
        now = utcnow()
        created = updated = unchanged = 0
        with self._writing() as session:
            session.info["defer_follow"] = True  # the import follows the log once, at its end
            ids = [c["id"] for _, c in batch if c.get("id")]
            existing: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), 500):
                for stored_row in session.execute(
                    select(table).where(table.c.id.in_(ids[start : start + 500]))
                ).mappings():
                    existing[stored_row["id"]] = dict(stored_row)
            new_rows: list[dict[str, Any]] = []
            changed_rows: list[dict[str, Any]] = []
            history_rows: list[dict[str, Any]] = []
            with_area: list[str] = []
            published: list[dict[str, Any]] = []  # public shapes of the batch's published listings
            for _row_no, clean in batch:
                clean.pop("version", None)
                new_status = clean.pop("__new_status__", None)
                listing_id = clean.pop("id", None) or self.new_id(clean)
                stored = existing.get(listing_id)
                note = source_name or clean.get("source")
                if stored is None:
                    row = {
                        **listing_defaults(clean.keys() | _STAMPED),
                        **clean,
                        "id": listing_id,
                        "created_at": now,
                        "updated_at": now,
                        "organization_id": self._organization_id(
                            session, clean.get("operator"), organizations
                        ),
                    }
                    if new_status:
                        row["status"] = new_status
                    after = public_dict(row)
                    if hook is not None:
                        hook(session, None, after)
                    if index_docs and after["status"] == "published":
                        published.append(after)
                    history_rows.append(
                        self._history_row(listing_id, 1, "import", actor, None, after, note, now)
                    )
                    new_rows.append(row)
                    if row.get("service_area"):
                        with_area.append(listing_id)
                    created += 1
                    continue
                before = public_dict(stored)
                changed = {k: v for k, v in clean.items() if stored.get(k) != v}
                if stored["status"] == "deleted":
                    changed["status"] = "published"
                if not changed:
                    unchanged += 1
                    if index_docs and before["status"] == "published":
                        published.append(before)
                    continue
                row = {**stored, **changed}
                row["organization_id"] = self._organization_id(
                    session, row.get("operator"), organizations
                )
                row["version"] = stored["version"] + 1
                row["updated_at"] = now
                after = public_dict(row)
                if hook is not None:
                    hook(session, before, after)
                if index_docs and after["status"] == "published":
                    published.append(after)
                history_rows.append(
                    self._history_row(
                        listing_id, row["version"], "import", actor, before, after, note, now
                    )
                )
                changed_rows.append(row)
                with_area.append(listing_id)
                updated += 1
            insert_many(session, table, new_rows)
            if changed_rows:
                columns = [c for c in table.c if c.name != "id"]
                statement = (
                    table.update()
                    .where(table.c.id == bindparam("row_id"))
                    .values({c: bindparam(f"new_{c.name}", type_=c.type) for c in columns})
                )
                session.execute(
                    statement,
                    [
                        {"row_id": row["id"], **{f"new_{c.name}": row.get(c.name) for c in columns}}
                        for row in changed_rows
                    ],
                )
            insert_many(session, ListingHistory.__table__, history_rows)  # type: ignore[attr-defined]
            queue_for_index(session, [row["id"] for row in (*new_rows, *changed_rows)])
            for listing_id in with_area:
                listing = session.get(Listing, listing_id)
                if listing is not None:
                    self._store_area(session, listing)
            audit(
                session,
                actor,
                "import",
                "import",
                None,
                f"{source_name}{part}: created {created}, updated {updated}, unchanged {unchanged}",
            )
        report.created += created
        report.updated += updated
        report.unchanged += unchanged
        gazetteer = self.gazetteer() if published else None
        return created + updated, [self.public_view(doc, gazetteer) for doc in published]

    @staticmethod
    def _history_row(
        listing_id: str,
        version: int,
        action: str,
        actor: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        note: str | None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        return {
            "listing_id": listing_id,
            "version": version,
            "action": action,
            "actor": actor[:200],
            "at": at or utcnow(),
            "before": before,
            "after": after,
            "note": note and note[:500],
        }


class _ImportIndex:
    """The search index a large import builds while it writes (outside the web: a web worker leaves
    large catch-ups to its background rebuild). Started after reading the change-log head and the
    published listings the import does not name; fed each batch's published listings once the batch
    has committed; swapped in at the head after the last batch only when every change-log entry since
    the start is the import's own (no other writer changed anything meanwhile). Otherwise, and on any
    failure, the build is dropped and the index follows the change log as before. It never holds a row
    the database lacks: nothing reaches the live index before every batch has committed."""

    def __init__(self, directory: Importing, build: IndexBuild, start_seq: int, lock: ExitStack):
        self.directory = directory
        self.build = build
        self.start_seq = start_seq
        self._lock = lock

    @classmethod
    def start(
        cls, directory: Importing, cleaned: list[tuple[int, dict[str, Any]]]
    ) -> _ImportIndex | None:
        if directory.serving or len(cleaned) <= BULK_REINDEX_THRESHOLD:
            return None  # applied from the change log (small), or rebuilt in the background (web)
        lock = ExitStack()
        if not lock.enter_context(directory.index.rebuild_lock.hold(wait=0.0)):
            lock.close()  # another rebuild runs on this host: follow the log at the end instead
            return None
        try:
            start_seq = directory._read_head_seq()  # before the rows, as `reindex` reads it
            build = directory.index.start_build()
        except BaseException:
            lock.close()
            raise
        indexing = cls(directory, build, start_seq, lock)
        try:
            named = {clean["id"] for _, clean in cleaned if clean.get("id")}
            docs: list[dict[str, Any]] = []
            for doc in directory.iter_published(public=True):
                if doc["id"] not in named:  # the import's rows come from its batches
                    docs.append(doc)
                    if len(docs) >= IMPORT_BATCH:
                        build.feed(docs)
                        docs = []
            build.feed(docs)
        except BaseException:
            indexing.abort()
            raise
        return indexing

    def finish(self, logged: int) -> None:
        """Swap the build in when the log since the start holds exactly the import's `logged` entries;
        otherwise drop it (the caller then follows the log)."""
        try:
            try:
                head = self.directory._read_head_seq()
                with self.directory.engine.connect() as connection:
                    entries = connection.execute(
                        select(func.count())
                        .select_from(ChangeLog)
                        .where(col(ChangeLog.seq) > self.start_seq, col(ChangeLog.seq) <= head)
                    ).scalar_one()
            except Exception:
                log.warning("reading the change log after the import failed", exc_info=True)
                entries = None
            if entries != logged:
                if entries is not None:
                    log.info("listings changed beside the import: the index follows the change log")
                self.build.abort()
                return
            try:
                self.build.finish(head)
            except Exception:
                log.warning("the index built beside the import failed", exc_info=True)
        finally:
            self._lock.close()

    def abort(self) -> None:
        try:
            self.build.abort()
        finally:
            self._lock.close()
