"""Importing many listings: validate and place every row, report problems by row and field, then write
rows, history, audit and change log in bulk."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from resdb.audit import audit
from resdb.changelog import queue_for_index
from resdb.duplicates import DUPLICATE_CHECK_ROWS
from resdb.listings import WriteHook, listing_defaults, listing_to_dict, public_dict
from resdb.models import (
    Listing,
    ListingHistory,
    utcnow,
)
from resdb.validation import Problem, validate_listing

MAX_REPORTED_PROBLEMS = 10_000  # problems kept in a report (all are counted)


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


class Importing:
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
        `hook` sees each row's before/after inside the write's transaction."""
        report = ImportReport(dry_run=dry_run, status=status)
        cleaned: list[tuple[int, dict[str, Any]]] = []
        light: list[tuple[int, dict[str, Any]]] = []  # what the duplicate check needs (bounded)
        seen_ids: dict[str, int] = {}
        bad_rows: list[int] = []
        pending_ids: list[str] = []

        def count_pending() -> None:
            existing = (
                {d["id"] for d in self.get_many(pending_ids, include_unpublished=True)}
                if pending_ids
                else set()
            )
            report.updated += len(existing)
            report.created += len(pending_ids) - len(existing)
            pending_ids.clear()

        def problem(found: Problem) -> None:
            report.problem_count += 1
            if len(report.problems) < MAX_REPORTED_PROBLEMS:
                report.problems.append(found)

        for row_no, raw in records:
            report.total += 1
            if progress:
                progress(1)
            if "__row_error__" in raw:
                problem(Problem(raw.get("__row_field__", "row"), raw["__row_error__"], row_no))
                bad_rows.append(row_no)
                continue
            clean, problems = validate_listing(raw, row_no)
            if not problems:
                problems = self.place(clean, row_no)
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
                    clean["service_area"], clean.get("municipality_code")
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
                    light.append((row_no, {k: clean.get(k) for k in ("id", "name", "lat", "lon")}))
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

    def _count_changes(
        self, cleaned: list[tuple[int, dict[str, Any]]], report: ImportReport
    ) -> None:
        ids = [c["id"] for _, c in cleaned if c.get("id")]
        existing = {d["id"] for d in self.get_many(ids, include_unpublished=True)}
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
        """One transaction: new listings by bulk insert, changed ones through the ORM, history for each."""
        organizations: dict[str, int] = {}
        now = utcnow()
        with self._writing() as session:
            ids = [c["id"] for _, c in cleaned if c.get("id")]
            existing: dict[str, Listing] = {}
            for start in range(0, len(ids), 500):
                for row in session.exec(
                    select(Listing).where(col(Listing.id).in_(ids[start : start + 500]))
                ).all():
                    existing[row.id] = row
            new_rows: list[dict[str, Any]] = []
            history_rows: list[dict[str, Any]] = []
            areas: list[Listing] = []
            for _row_no, clean in cleaned:
                clean.pop("version", None)
                new_status = clean.pop("__new_status__", None)
                listing_id = clean.pop("id", None) or self.new_id(clean)
                listing = existing.get(listing_id)
                if listing is None:
                    row = {
                        **listing_defaults(),
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
                    new_rows.append(row)
                    if hook is not None:
                        hook(session, None, public_dict(row))
                    history_rows.append(
                        self._history_row(
                            listing_id,
                            1,
                            "import",
                            actor,
                            None,
                            public_dict(row),
                            source_name or clean.get("source"),
                        )
                    )
                    report.created += 1
                    continue
                before = listing_to_dict(listing)
                changed = {k: v for k, v in clean.items() if getattr(listing, k) != v}
                if listing.status == "deleted":
                    changed["status"] = "published"
                if not changed:
                    report.unchanged += 1
                    continue
                for key, value in changed.items():
                    setattr(listing, key, value)
                listing.organization_id = self._organization_id(
                    session, listing.operator, organizations
                )
                listing.version += 1
                listing.updated_at = now
                after = listing_to_dict(listing)
                if hook is not None:
                    hook(session, before, after)
                history_rows.append(
                    self._history_row(
                        listing_id,
                        listing.version,
                        "import",
                        actor,
                        before,
                        after,
                        source_name or clean.get("source"),
                    )
                )
                areas.append(listing)
                report.updated += 1
            for start in range(0, len(new_rows), 1000):
                session.execute(Listing.__table__.insert(), new_rows[start : start + 1000])  # type: ignore[attr-defined]
            for start in range(0, len(history_rows), 1000):
                session.execute(
                    ListingHistory.__table__.insert(), history_rows[start : start + 1000]
                )  # type: ignore[attr-defined]
            queue_for_index(session, [row["id"] for row in new_rows])
            session.flush()
            for row in new_rows:
                if row.get("service_area"):
                    areas.append(session.get(Listing, row["id"]))  # type: ignore[arg-type]
            for listing in areas:
                self._store_area(session, listing)
            audit(
                session,
                actor,
                "import",
                "import",
                None,
                f"{source_name}: created {report.created}, updated {report.updated}, unchanged {report.unchanged}",
            )

    @staticmethod
    def _history_row(
        listing_id: str,
        version: int,
        action: str,
        actor: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        note: str | None,
    ) -> dict[str, Any]:
        return {
            "listing_id": listing_id,
            "version": version,
            "action": action,
            "actor": actor[:200],
            "at": utcnow(),
            "before": before,
            "after": after,
            "note": note and note[:500],
        }
