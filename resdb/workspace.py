"""Workspace core (framework-free; over 500 lines: one class over the same session, scope and audit
calls, read best side by side): audit log, public corrections, the verification queue, saved cases
with placements and follow-up, and the plans' yearly indicators."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from resdb.accounts import Account
from resdb.audit import audit
from resdb.audit import audit_entries as audit_entries  # re-exported for callers
from resdb.db import read_session, write_session
from resdb.directory import Directory, NotFound
from resdb.fields import bad_text, first_bad_text
from resdb.models import Case, ChangeRequest, Listing, Placement, PlacementEvent, utcnow
from resdb.policy import Forbidden as Forbidden  # re-exported for callers
from resdb.policy import authorize
from resdb.validation import Problem, ValidationFailed, validate_listing

LEGAL_BASES: dict[str, str] = {
    "consent": "本人同意",
    "support_meeting": "支援会議（社会福祉法106条の6）",
}
STAGES: dict[str, str] = {
    "proposed": "提案",
    "visited": "見学",
    "trial": "体験",
    "participating": "参加中",
    "settled": "定着",
    "stopped": "中断",
}
JOINED_STAGES = {"participating", "settled"}
EVENT_KINDS: dict[str, str] = {
    "stage": "段階の変更",
    "follow_up": "フォローアップ（定着支援）",
    "host_support": "受け入れ先支援",
}
CORRECTION_LIMIT_PER_HOUR = 5
MESSAGE_MAX = 2000
PSEUDONYM_MAX = 100
NOTES_MAX = 5000
CONTACT_MAX = 200
VERIFY_QUEUE_DAYS = 183
FISCAL_YEAR_START_MONTH = 4  # 年度: 1 April to 31 March


def fiscal_year(day: date) -> int:
    """The 年度 a date falls in (2026-03-31 → 2025, 2026-04-01 → 2026)."""
    return day.year if day.month >= FISCAL_YEAR_START_MONTH else day.year - 1


class RateLimited(Exception):
    pass


def client_key(remote_addr: str | None, secret: str) -> str:
    """A keyed hash of the client address: enough to limit spam, useless to identify anyone."""
    return hashlib.sha256(f"{secret}:{remote_addr or ''}".encode()).hexdigest()[:32]


@dataclass
class Workspace:
    directory: Directory

    @property
    def engine(self) -> Engine:
        return self.directory.engine

    # -- public corrections -------------------------------------------------------------------
    def submit_correction(
        self,
        listing_id: str,
        message: str,
        *,
        proposed: dict[str, Any] | None = None,
        contact: str | None = None,
        client: str | None = None,
    ) -> int:
        """Store a resident's report; the proposed fields are validated now so editors get clean data."""
        self.directory.get(listing_id)  # NotFound for unknown / hidden listings
        message = (message or "").strip()
        problems = []
        if not message:
            problems.append(Problem("message", "内容を書いてください"))
        elif len(message) > MESSAGE_MAX:
            problems.append(Problem("message", f"{MESSAGE_MAX}文字以内にしてください"))
        elif why := bad_text(message):
            problems.append(Problem("message", why))
        if contact and (why := bad_text(contact)):
            problems.append(Problem("contact", why))
        clean: dict[str, Any] = {}
        if proposed:
            clean, field_problems = validate_listing(
                {k: v for k, v in proposed.items() if v not in (None, "")}, partial=True
            )
            problems += field_problems
        if problems:
            raise ValidationFailed(problems)
        since = utcnow() - timedelta(hours=1)
        with write_session(self.engine) as session:
            if client:
                recent = session.exec(
                    select(func.count())
                    .select_from(ChangeRequest)
                    .where(ChangeRequest.client_key == client, ChangeRequest.created_at >= since)
                ).one()
                if recent >= CORRECTION_LIMIT_PER_HOUR:
                    raise RateLimited(
                        "短時間に多くの報告が送られました。しばらくしてからお試しください"
                    )
            request = ChangeRequest(
                listing_id=listing_id,
                message=message,
                client_key=client,
                proposed={
                    k: (v.isoformat() if isinstance(v, date) else v) for k, v in clean.items()
                },
                contact=(contact or "").strip()[:200] or None,
            )
            session.add(request)
            session.flush()
            audit(
                session,
                "public",
                "correction.submit",
                "listing",
                listing_id,
                f"request {request.id}",
            )
            assert request.id is not None
            return request.id

    def corrections(
        self, status: str | None = "open", account: Account | None = None
    ) -> list[dict[str, Any]]:
        with read_session(self.engine) as session:
            statement = select(ChangeRequest).order_by(col(ChangeRequest.id).desc())
            if status:
                statement = statement.where(ChangeRequest.status == status)
            rows = session.exec(statement).all()
        listings = {
            x["id"]: x
            for x in self.directory.get_many([r.listing_id for r in rows], include_unpublished=True)
        }
        out = []
        for row in rows:
            listing = listings.get(row.listing_id)
            if account is not None and listing is not None and not account.may_edit(listing):
                continue
            item = row.model_dump(exclude={"client_key"})
            item["listing_name"] = listing["name"] if listing else row.listing_id
            out.append(item)
        return out

    def review_correction(
        self,
        request_id: int,
        account: Account,
        *,
        accept: bool,
        fields: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Accept (the change goes through the listing's history) or reject a resident's report: the listing's
        change, the request's new status and the audit entry are one transaction."""
        with read_session(self.engine) as session:
            request = session.get(ChangeRequest, request_id)
        if request is None or request.status != "open":
            raise NotFound(f"change request {request_id}")
        if note is not None and (why := bad_text(note)):
            raise ValidationFailed([Problem("note", why)])
        decided: dict[str, Any] = {}

        def decide(session: Session, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
            authorize(account, "listing.correction", before, after)
            row = session.get(ChangeRequest, request_id, with_for_update=True)
            if row is None or row.status != "open":
                raise NotFound(f"change request {request_id}")  # someone decided it meanwhile
            row.status = "accepted" if accept else "rejected"
            row.reviewed_by, row.reviewed_at, row.review_note = (
                account.email,
                utcnow(),
                note and note[:500],
            )
            audit(
                session,
                account.email,
                "correction.accept" if accept else "correction.reject",
                "listing",
                request.listing_id,
                f"request {request_id}",
            )
            session.flush()
            decided.update(row.model_dump(exclude={"client_key"}))

        changes = (fields if fields is not None else request.proposed) if accept else None
        if changes:
            self.directory.update(
                request.listing_id,
                changes,
                actor=account.email,
                expected_version=None,
                action="correction",
                note=f"訂正依頼 #{request_id}",
                hook=decide,
            )
        else:
            listing = self.directory.get(request.listing_id, include_unpublished=True)
            with write_session(self.engine) as session:
                decide(session, listing, listing)
        return decided

    # -- verification queue --------------------------------------------------------------------
    def verification_queue(
        self,
        *,
        days: int = VERIFY_QUEUE_DAYS,
        account: Account | None = None,
        today: date | None = None,
    ) -> list[dict[str, Any]]:
        """Published listings not verified in `days` (or never), oldest first."""
        cutoff = (today or date.today()) - timedelta(days=days)
        with read_session(self.engine) as session:
            rows = session.exec(
                select(Listing)
                .where(
                    Listing.status == "published",
                    (col(Listing.verified_at).is_(None)) | (col(Listing.verified_at) < cutoff),
                    (col(Listing.source).is_(None)) | (col(Listing.source) != "synthetic"),
                )
                .order_by(col(Listing.verified_at).asc().nulls_first(), Listing.name)
            ).all()
        from resdb.directory import listing_to_dict

        items = [listing_to_dict(r) for r in rows]
        return [x for x in items if account is None or account.may_edit(x)]

    # -- saved cases ---------------------------------------------------------------------------
    @staticmethod
    def _case_code(case_id: int) -> str:
        """C<year>-<id>: the id comes from the database's own sequence, so two saves never share a code."""
        return f"C{datetime.now(UTC).year}-{case_id:04d}"

    def save_case(
        self,
        account: Account,
        *,
        pseudonym: str,
        legal_basis: str,
        person: dict[str, Any],
        notes: str | None = None,
        proposals: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Save what the coordinator chose to keep (pseudonymous), with the legal basis for keeping it."""
        authorize(account, "case.create")
        problems = []
        if legal_basis not in LEGAL_BASES:
            problems.append(Problem("legal_basis", "本人同意 または 支援会議 を選んでください"))
        if not (pseudonym or "").strip():
            problems.append(Problem("pseudonym", "仮名（イニシャルや番号）を入れてください"))
        elif len(pseudonym.strip()) > PSEUDONYM_MAX:
            problems.append(Problem("pseudonym", f"仮名は{PSEUDONYM_MAX}文字以内にしてください"))
        if notes and len(notes) > NOTES_MAX:
            problems.append(Problem("notes", f"メモは{NOTES_MAX}文字以内にしてください"))
        for name, value in (("pseudonym", pseudonym), ("notes", notes), ("person", person)):
            found = first_bad_text(value, name) if value else None
            if found is not None:
                problems.append(Problem(name, found[1]))
        for proposal in proposals or []:
            if (
                not isinstance(proposal.get("resource_id"), str)
                or len(proposal["resource_id"]) > 100
            ):
                problems.append(Problem("proposals", "提案の場所の id が正しくありません"))
                break
        if problems:
            raise ValidationFailed(problems)
        with write_session(self.engine) as session:
            case = Case(
                code=f"new-{uuid.uuid4().hex[:24]}",
                pseudonym=pseudonym.strip(),
                legal_basis=legal_basis,
                person=person,
                notes=notes,
                coordinator_id=account.id,
            )
            session.add(case)
            session.flush()
            assert case.id is not None
            case.code = self._case_code(case.id)
            for proposal in proposals or []:
                session.add(
                    Placement(
                        case_id=case.id,
                        listing_id=proposal["resource_id"],
                        score=proposal.get("score"),
                    )
                )
            audit(
                session,
                account.email,
                "case.create",
                "case",
                str(case.id),
                f"legal_basis={legal_basis}",
            )
            case_id = case.id
        return self.case(case_id, account, audit_view=False)

    def _case_row(self, session: Session, case_id: int, account: Account) -> Case:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"case {case_id}")
        authorize(account, "case.read", {"coordinator_id": case.coordinator_id})
        return case

    def case(self, case_id: int, account: Account, *, audit_view: bool = True) -> dict[str, Any]:
        """One case with its placements and their events; every view is audited."""
        with write_session(self.engine) as session:
            case = self._case_row(session, case_id, account)
            placements = session.exec(
                select(Placement).where(Placement.case_id == case_id).order_by(col(Placement.id))
            ).all()
            events = (
                session.exec(
                    select(PlacementEvent)
                    .where(col(PlacementEvent.placement_id).in_([p.id for p in placements]))
                    .order_by(col(PlacementEvent.id))
                ).all()
                if placements
                else []
            )
            if audit_view:
                audit(session, account.email, "case.view", "case", str(case_id))
            data = case.model_dump()
        names = {
            x["id"]: x["name"]
            for x in self.directory.get_many(
                [p.listing_id for p in placements], include_unpublished=True
            )
        }
        data["placements"] = [
            {
                **p.model_dump(),
                "listing_name": names.get(p.listing_id, p.listing_id),
                "stage_label": STAGES[p.stage],
                "events": [e.model_dump() for e in events if e.placement_id == p.id],
            }
            for p in placements
        ]
        return data

    def cases(self, account: Account) -> list[dict[str, Any]]:
        """The caseload: this coordinator's cases (an admin sees all), with their placements' stages."""
        with read_session(self.engine) as session:
            statement = select(Case).order_by(col(Case.id).desc())
            if account.role != "admin":
                statement = statement.where(Case.coordinator_id == account.id)
            cases = session.exec(statement).all()
            placements = (
                session.exec(
                    select(Placement).where(col(Placement.case_id).in_([c.id for c in cases]))
                ).all()
                if cases
                else []
            )
        out = []
        for case in cases:
            mine = [p for p in placements if p.case_id == case.id]
            follow = [p.next_follow_up for p in mine if p.next_follow_up]
            out.append(
                {
                    "id": case.id,
                    "code": case.code,
                    "pseudonym": case.pseudonym,
                    "status": case.status,
                    "legal_basis": case.legal_basis,
                    "created_at": case.created_at,
                    "updated_at": case.updated_at,
                    "stages": [STAGES[p.stage] for p in mine],
                    "next_follow_up": min(follow) if follow else None,
                }
            )
        return out

    def add_placement(
        self, case_id: int, account: Account, listing_id: str, score: float | None = None
    ) -> int:
        self.directory.get(listing_id)
        with write_session(self.engine) as session:
            case = self._case_row(session, case_id, account)
            placement = Placement(case_id=case_id, listing_id=listing_id, score=score)
            session.add(placement)
            case.updated_at = utcnow()
            session.flush()
            audit(
                session,
                account.email,
                "placement.create",
                "case",
                str(case_id),
                f"listing {listing_id}",
            )
            assert placement.id is not None
            return placement.id

    def record(
        self,
        placement_id: int,
        account: Account,
        *,
        kind: str,
        to_stage: str | None = None,
        note: str | None = None,
        next_follow_up: date | None = None,
    ) -> dict[str, Any]:
        """A stage change (提案 → 見学 → …), a follow-up or a host-support note, with the next follow-up date."""
        if kind not in EVENT_KINDS:
            raise ValidationFailed([Problem("kind", "記録の種類が不明です")])
        if kind == "stage" and to_stage not in STAGES:
            raise ValidationFailed([Problem("to_stage", "段階を選んでください")])
        if note and (len(note) > NOTES_MAX or bad_text(note)):
            raise ValidationFailed(
                [Problem("note", bad_text(note) or f"{NOTES_MAX}文字以内にしてください")]
            )
        with write_session(self.engine) as session:
            placement = session.get(Placement, placement_id)
            if placement is None:
                raise NotFound(f"placement {placement_id}")
            case = self._case_row(session, placement.case_id, account)
            event = PlacementEvent(
                placement_id=placement_id,
                actor=account.email,
                kind=kind,
                note=note,
                from_stage=placement.stage if kind == "stage" else None,
                to_stage=to_stage if kind == "stage" else None,
            )
            session.add(event)
            if kind == "stage" and to_stage:
                placement.stage = to_stage
            if next_follow_up is not None:
                placement.next_follow_up = next_follow_up
            placement.updated_at = case.updated_at = utcnow()
            audit(
                session,
                account.email,
                f"placement.{kind}",
                "case",
                str(case.id),
                f"placement {placement_id}" + (f" → {to_stage}" if to_stage else ""),
            )
            return placement.model_dump()

    # -- indicators -----------------------------------------------------------------------------
    @staticmethod
    def fiscal_year_bounds(fiscal_year: int) -> tuple[datetime, datetime]:
        """年度: 1 April of `fiscal_year` to 1 April of the next year (UTC bounds of JST dates)."""
        jst = timezone(timedelta(hours=9))
        start = FISCAL_YEAR_START_MONTH
        return datetime(fiscal_year, start, 1, tzinfo=jst), datetime(
            fiscal_year + 1, start, 1, tzinfo=jst
        )

    def indicators(self, fiscal_year: int) -> dict[str, Any]:
        """参加支援のプラン作成件数, 活動参加の場への利用につながった人数, 受け入れ先（運営主体）の数."""
        start, end = self.fiscal_year_bounds(fiscal_year)
        with read_session(self.engine) as session:
            plans = session.exec(
                select(func.count())
                .select_from(Case)
                .where(Case.created_at >= start, Case.created_at < end)
            ).one()
            joined_rows = session.exec(
                select(Placement.case_id, Placement.listing_id)
                .join(PlacementEvent, col(PlacementEvent.placement_id) == Placement.id)
                .where(
                    PlacementEvent.kind == "stage",
                    col(PlacementEvent.to_stage).in_(JOINED_STAGES),
                    PlacementEvent.at >= start,
                    PlacementEvent.at < end,
                )
            ).all()
        listings = {
            x["id"]: x
            for x in self.directory.get_many(
                sorted({listing for _, listing in joined_rows}), include_unpublished=True
            )
        }
        hosts = sorted(
            {
                (listings.get(lid) or {}).get("operator")
                or (listings.get(lid) or {}).get("name")
                or lid
                for _, lid in joined_rows
            }
        )
        return {
            "fiscal_year": fiscal_year,
            "label": f"{fiscal_year}年度",
            "plans": plans,
            "joined_persons": len({case for case, _ in joined_rows}),
            "host_organizations": len(hosts),
            "hosts": hosts,
        }

    @staticmethod
    def indicators_csv(rows: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        extra = [("partner_hosts", "協力企業・団体数"), ("sheets_total", "相談依頼シート件数")]
        extra = [(key, title) for key, title in extra if rows and key in rows[0]]
        writer.writerow(
            [
                "年度",
                "参加支援のプラン作成件数",
                "活動参加の場への利用につながった人数",
                "受け入れ先の数",
            ]
            + [title for _, title in extra]
        )
        for row in rows:
            writer.writerow(
                [row["label"], row["plans"], row["joined_persons"], row["host_organizations"]]
                + [row[key] for key, _ in extra]
            )
        return out.getvalue()
