"""The referral loop between a coordinator and a host (over 500 lines: one class whose calls share
one status machine and one scope check, read best side by side): send the minimum, answer, shared
statuses that feed the case's placement stages, and each host's responsiveness (median days to
answer, share accepted)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from resdb.accounts import Account
from resdb.audit import audit
from resdb.db import read_session, write_session
from resdb.directory import Conflict, Directory, NotFound
from resdb.fields import bad_text
from resdb.models import Case, Placement, PlacementEvent, Referral, ReferralEvent, User, utcnow
from resdb.policy import authorize
from resdb.validation import Problem, ValidationFailed

STATUSES: dict[str, str] = {
    "sent": "送付",
    "answered": "回答",
    "visit": "見学",
    "trial": "体験",
    "participating": "参加中",
    "settled": "定着",
    "stopped": "中断",
}
STATUS_FLOW = ("sent", "answered", "visit", "trial", "participating", "settled")
LATER_STATUSES = ("visit", "trial", "participating", "settled", "stopped")
ANSWERS: dict[str, str] = {"accept": "受け入れ可", "visit": "見学日の提案", "decline": "今は難しい"}
DECLINE_REASONS: dict[str, str] = {
    "full": "今は受け入れの枠がいっぱい",
    "schedule": "日程が合わない",
    "fit": "活動の内容が合わない",
    "support": "必要な配慮の体制がない",
    "other": "その他（コーディネーターに電話で伝えます）",
}
# A referral's status moves the placement it came from (the coordinator's stages: 提案 → 見学 → …).
STAGE_OF = {
    "sent": "proposed",
    "answered": "proposed",
    "visit": "visited",
    "trial": "trial",
    "participating": "participating",
    "settled": "settled",
    "stopped": "stopped",
}
STATS_MIN_REFERRALS = 5
PSEUDONYM_MAX, DATES_MAX, HELPS_MAX, CONTACT_MAX = 100, 300, 1000, 300


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _side(actor: Account) -> str:
    return "host" if actor.role == "host" else "coordinator"


@dataclass
class Referrals:
    directory: Directory

    @property
    def engine(self) -> Engine:
        return self.directory.engine

    # -- sending ---------------------------------------------------------------------------------
    def send(
        self,
        actor: Account,
        case_id: int,
        placement_id: int,
        *,
        pseudonym: str,
        proposed_dates: str,
        helps: str,
        contact_route: str,
        confirmed: bool,
    ) -> dict[str, Any]:
        """A referral of one placement of a saved case to the host organisation that runs the place.

        Only the fields given here travel (the case's own person data and notes never do); the case's legal
        basis (本人同意 / 支援会議) is recorded with it, and the coordinator must confirm it covers sending."""
        texts = {
            "pseudonym": (pseudonym or "").strip(),
            "proposed_dates": (proposed_dates or "").strip(),
            "helps": (helps or "").strip(),
            "contact_route": (contact_route or "").strip(),
        }
        problems = []
        for name, limit, required, what in (
            ("pseudonym", PSEUDONYM_MAX, True, "仮名（イニシャルや番号）"),
            ("proposed_dates", DATES_MAX, False, "提案する日"),
            ("helps", HELPS_MAX, False, "配慮してほしいこと"),
            ("contact_route", CONTACT_MAX, True, "連絡の方法"),
        ):
            value = texts[name]
            if required and not value:
                problems.append(Problem(name, f"{what}を入れてください"))
            elif len(value) > limit:
                problems.append(Problem(name, f"{what}は{limit}文字以内にしてください"))
            elif value and (why := bad_text(value)):
                problems.append(Problem(name, why))
        if not confirmed:
            problems.append(
                Problem(
                    "confirm",
                    "本人の同意（または支援会議の決定）に基づいて送ることを確認してください",
                )
            )
        with write_session(self.engine) as session:
            case = session.get(Case, case_id)
            if case is None:
                raise NotFound(f"case {case_id}")
            authorize(actor, "referral.send", {"coordinator_id": case.coordinator_id})
            placement = session.get(Placement, placement_id)
            if placement is None or placement.case_id != case_id:
                raise NotFound(f"placement {placement_id}")
            listing = self.directory.get(placement.listing_id)
            host = (listing.get("operator") or "").strip()
            if not listing.get("accepts_referrals", True):
                problems.append(Problem("listing_id", "この場所は紹介を受け付けていません"))
            elif not host or not self._host_registered(session, host):
                problems.append(
                    Problem(
                        "listing_id",
                        "この場所の運営団体は受け入れ先として登録されていません（電話などで連絡してください）",
                    )
                )
            if problems:
                raise ValidationFailed(problems)
            open_one = session.exec(
                select(Referral.id).where(
                    Referral.placement_id == placement_id,
                    Referral.status != "stopped",
                    (col(Referral.answer).is_(None)) | (col(Referral.answer) != "decline"),
                )
            ).first()
            if open_one is not None:
                raise Conflict("この場所にはもう紹介を送っています")
            referral = Referral(
                case_id=case_id,
                placement_id=placement_id,
                listing_id=placement.listing_id,
                host=host,
                coordinator_id=case.coordinator_id,
                pseudonym=texts["pseudonym"],
                proposed_dates=texts["proposed_dates"] or None,
                helps=texts["helps"] or None,
                contact_route=texts["contact_route"],
                basis=case.legal_basis,
            )
            session.add(referral)
            session.flush()
            assert referral.id is not None
            session.add(
                ReferralEvent(
                    referral_id=referral.id,
                    actor=actor.email,
                    side="coordinator",
                    kind="sent",
                    to_status="sent",
                )
            )
            audit(
                session,
                actor.email,
                "referral.send",
                "referral",
                str(referral.id),
                f"case {case_id} placement {placement_id} basis={case.legal_basis}",
            )
            return self._dict(referral, listing_name=listing["name"])

    @staticmethod
    def _host_registered(session: Session, host: str) -> bool:
        return (
            session.exec(
                select(User.id).where(
                    User.role == "host", User.operator == host, col(User.active).is_(True)
                )
            ).first()
            is not None
        )

    # -- reading -----------------------------------------------------------------------------------
    def _dict(
        self,
        referral: Referral,
        *,
        listing_name: str | None = None,
        events: list[ReferralEvent] | None = None,
        for_host: bool = False,
    ) -> dict[str, Any]:
        # A host gets the referral itself, not even the ids that lead to the case or its coordinator.
        data = referral.model_dump(
            exclude={"case_id", "placement_id", "coordinator_id"} if for_host else None
        )
        data["status_label"] = STATUSES.get(referral.status, referral.status)
        data["answer_label"] = ANSWERS.get(referral.answer or "", "")
        data["reason_label"] = DECLINE_REASONS.get(referral.answer_reason or "", "")
        data["listing_name"] = listing_name or referral.listing_id
        if events is not None:
            data["events"] = [e.model_dump() for e in events]
        return data

    def _names(self, rows: list[Referral]) -> dict[str, str]:
        return {
            x["id"]: x["name"]
            for x in self.directory.get_many(
                sorted({r.listing_id for r in rows}), include_unpublished=True
            )
        }

    def for_host(self, actor: Account) -> list[dict[str, Any]]:
        """The referrals addressed to the actor's organisation, newest first (the list view is audited)."""
        authorize(actor, "referral.read", {"host": actor.operator, "coordinator_id": None})
        with write_session(self.engine) as session:
            rows = list(
                session.exec(
                    select(Referral)
                    .where(Referral.host == actor.operator)
                    .order_by(col(Referral.id).desc())
                ).all()
            )
            audit(
                session,
                actor.email,
                "referral.list",
                "host",
                (actor.operator or "")[:100],
                f"{len(rows)} referrals",
            )
        names = self._names(rows)
        return [self._dict(r, listing_name=names.get(r.listing_id), for_host=True) for r in rows]

    def for_case(self, actor: Account, case_id: int) -> list[dict[str, Any]]:
        """A case's referrals for its coordinator (the case page's view is audited as a case view)."""
        with read_session(self.engine) as session:
            rows = list(
                session.exec(
                    select(Referral).where(Referral.case_id == case_id).order_by(col(Referral.id))
                ).all()
            )
            events = (
                list(
                    session.exec(
                        select(ReferralEvent)
                        .where(col(ReferralEvent.referral_id).in_([r.id for r in rows]))
                        .order_by(col(ReferralEvent.id))
                    ).all()
                )
                if rows
                else []
            )
        for row in rows:
            authorize(
                actor, "referral.read", {"host": row.host, "coordinator_id": row.coordinator_id}
            )
        names = self._names(rows)
        return [
            self._dict(
                r,
                listing_name=names.get(r.listing_id),
                events=[e for e in events if e.referral_id == r.id],
            )
            for r in rows
        ]

    def by_case(self, actor: Account, case_ids: list[int]) -> dict[int, list[str]]:
        """For the caseload: each case's referrals as 「host: status」 (only the actor's own cases)."""
        if not case_ids:
            return {}
        with read_session(self.engine) as session:
            rows = session.exec(
                select(Referral)
                .where(col(Referral.case_id).in_(case_ids))
                .order_by(col(Referral.id))
            ).all()
        out: dict[int, list[str]] = {}
        for row in rows:
            if actor.role != "admin" and row.coordinator_id != actor.id:
                continue
            state = STATUSES[row.status] if row.answer else "回答待ち"
            if row.answer == "decline":
                state = ANSWERS["decline"]
            out.setdefault(row.case_id, []).append(f"{row.host}: {state}")
        return out

    def get(self, actor: Account, referral_id: int, *, audit_view: bool = True) -> dict[str, Any]:
        """One referral with its steps: exactly what was sent, nothing else of the case (viewing is audited)."""
        with write_session(self.engine) as session:
            row = self._row(session, actor, referral_id, "referral.read")
            events = list(
                session.exec(
                    select(ReferralEvent)
                    .where(ReferralEvent.referral_id == referral_id)
                    .order_by(col(ReferralEvent.id))
                ).all()
            )
            if audit_view:
                audit(
                    session,
                    actor.email,
                    "referral.view",
                    "referral",
                    str(referral_id),
                    _side(actor),
                )
        return self._dict(
            row,
            listing_name=self._names([row]).get(row.listing_id),
            events=events,
            for_host=actor.role == "host",
        )

    @staticmethod
    def _row(session: Session, actor: Account, referral_id: int, action: str) -> Referral:
        row = session.get(Referral, referral_id, with_for_update=action != "referral.read")
        if row is None:
            raise NotFound(f"referral {referral_id}")
        authorize(actor, action, {"host": row.host, "coordinator_id": row.coordinator_id})
        return row

    # -- answering and following -----------------------------------------------------------------
    def answer(
        self,
        actor: Account,
        referral_id: int,
        *,
        answer: str,
        reason: str | None = None,
        visit_date: date | None = None,
        today: date | None = None,
    ) -> dict[str, Any]:
        """The host's answer: 受け入れ可 / 見学日の提案 (with a date) / 今は難しい (with a reason from the list)."""
        problems = []
        if answer not in ANSWERS:
            problems.append(
                Problem("answer", "受け入れ可・見学日の提案・今は難しい のどれかを選んでください")
            )
        if answer == "decline" and reason not in DECLINE_REASONS:
            problems.append(Problem("reason", "理由を一覧から選んでください"))
        if answer == "visit":
            if visit_date is None:
                problems.append(Problem("visit_date", "見学の日を入れてください"))
            elif visit_date < (today or date.today()):
                problems.append(Problem("visit_date", "見学の日は今日以降にしてください"))
        if problems:
            raise ValidationFailed(problems)
        with write_session(self.engine) as session:
            row = self._row(session, actor, referral_id, "referral.answer")
            if row.status not in {"sent", "answered"}:
                raise Conflict("この紹介はもう先の段階に進んでいます")
            before = row.status
            row.answer, row.answer_reason = answer, reason if answer == "decline" else None
            row.visit_date = visit_date if answer == "visit" else None
            row.status = "answered"
            if row.answered_at is None:
                row.answered_at = utcnow()
            row.updated_at = utcnow()
            session.add(
                ReferralEvent(
                    referral_id=referral_id,
                    actor=actor.email,
                    side=_side(actor),
                    kind="answer",
                    from_status=before,
                    to_status="answered",
                    on_date=row.visit_date,
                )
            )
            audit(
                session,
                actor.email,
                "referral.answer",
                "referral",
                str(referral_id),
                f"answer={answer}" + (f" reason={reason}" if answer == "decline" else ""),
            )
            session.flush()
            return self._dict(row, for_host=True)

    def set_status(self, actor: Account, referral_id: int, to_status: str) -> dict[str, Any]:
        """見学 → 体験 → 参加中 → 定着 / 中断, by either side once the host has answered; the case's placement
        moves with it (one transaction)."""
        if to_status not in LATER_STATUSES:
            raise ValidationFailed([Problem("status", "段階を一覧から選んでください")])
        with write_session(self.engine) as session:
            row = self._row(session, actor, referral_id, "referral.update")
            if row.answer is None:
                raise Conflict("受け入れ先の回答の前には段階を進められません")
            if row.answer == "decline" and to_status != "stopped":
                raise Conflict("「今は難しい」と回答された紹介です")
            if row.status != to_status:
                self._move(session, actor, row, to_status)
            return self._dict(row, for_host=actor.role == "host")

    def attended(
        self, actor: Account, referral_id: int, on: date, *, today: date | None = None
    ) -> dict[str, Any]:
        """「来ました」: one visit of the person on a date (the first one after the answer makes it 見学)."""
        if on > (today or date.today()):
            raise ValidationFailed([Problem("on", "来た日は今日までの日付にしてください")])
        with write_session(self.engine) as session:
            row = self._row(session, actor, referral_id, "referral.update")
            if row.answer in (None, "decline") or row.status == "stopped":
                raise Conflict("受け入れの回答がない紹介には来所を記録できません")
            row.attended += 1
            row.updated_at = utcnow()
            session.add(
                ReferralEvent(
                    referral_id=referral_id,
                    actor=actor.email,
                    side=_side(actor),
                    kind="attended",
                    on_date=on,
                )
            )
            audit(
                session,
                actor.email,
                "referral.attended",
                "referral",
                str(referral_id),
                f"count={row.attended}",
            )
            if row.status == "answered":
                self._move(session, actor, row, "visit")
            session.flush()
            return self._dict(row, for_host=actor.role == "host")

    def _move(self, session: Session, actor: Account, row: Referral, to_status: str) -> None:
        assert row.id is not None  # a stored row
        before = row.status
        row.status, row.updated_at = to_status, utcnow()
        session.add(
            ReferralEvent(
                referral_id=row.id,
                actor=actor.email,
                side=_side(actor),
                kind="status",
                from_status=before,
                to_status=to_status,
            )
        )
        audit(
            session,
            actor.email,
            "referral.status",
            "referral",
            str(row.id),
            f"{before} → {to_status}",
        )
        placement = session.get(Placement, row.placement_id) if row.placement_id else None
        stage = STAGE_OF[to_status]
        if placement is not None and placement.stage != stage:
            assert placement.id is not None  # a stored row
            session.add(
                PlacementEvent(
                    placement_id=placement.id,
                    actor=actor.email,
                    kind="stage",
                    from_stage=placement.stage,
                    to_stage=stage,
                    note=f"紹介 #{row.id} の段階（{'受け入れ先' if actor.role == 'host' else 'コーディネーター'}が更新）",
                )
            )
            placement.stage = stage
            placement.updated_at = utcnow()
            case = session.get(Case, placement.case_id)
            if case is not None:
                case.updated_at = utcnow()
            audit(
                session,
                actor.email,
                "placement.stage",
                "case",
                str(placement.case_id),
                f"placement {placement.id} → {stage} (referral {row.id})",
            )

    # -- responsiveness --------------------------------------------------------------------------
    def host_stats(self, hosts: list[str]) -> dict[str, dict[str, Any]]:
        """Per host organisation: referrals received, median days to answer, share accepted; `shown` only once
        there are at least STATS_MIN_REFERRALS (fewer say too little and could point at one person)."""
        wanted = sorted({h for h in hosts if h})
        if not wanted:
            return {}
        with read_session(self.engine) as session:
            rows = session.exec(
                select(
                    Referral.host, Referral.sent_at, Referral.answered_at, Referral.answer
                ).where(col(Referral.host).in_(wanted))
            ).all()
        out: dict[str, dict[str, Any]] = {}
        for host in wanted:
            mine = [r for r in rows if r[0] == host]
            answered = [r for r in mine if r[2] is not None]
            days = [(_aware(r[2]) - _aware(r[1])).total_seconds() / 86400 for r in answered]
            accepted = sum(1 for r in answered if r[3] in {"accept", "visit"})
            median = statistics.median(days) if days else None
            out[host] = {
                "referrals": len(mine),
                "answered": len(answered),
                "median_days": None if median is None else round(median, 1),
                "accepted_share": round(accepted / len(answered), 2) if answered else None,
                "shown": len(mine) >= STATS_MIN_REFERRALS,
            }
            stat = out[host]
            if stat["shown"] and median is not None:
                stat["text"] = (
                    f"回答まで中央値 {_days_text(median)}・受け入れ {round(100 * accepted / len(answered))}%"
                    f"（紹介 {len(mine)} 件）"
                )
            elif stat["shown"]:
                stat["text"] = f"まだ回答がありません（紹介 {len(mine)} 件）"
            else:
                stat["text"] = f"紹介が{STATS_MIN_REFERRALS}件になるまで回答の早さは表示しません"
        return out

    def accepting_hosts(self, start: datetime, end: datetime) -> list[str]:
        """協力企業・団体: host organisations that accepted (受け入れ可 / 見学日の提案) at least one referral."""
        with read_session(self.engine) as session:
            rows = session.exec(
                select(Referral.host)
                .where(
                    col(Referral.answer).in_(["accept", "visit"]),
                    col(Referral.answered_at) >= start,
                    col(Referral.answered_at) < end,
                )
                .group_by(Referral.host)
            ).all()
        return sorted(rows)

    def count(self) -> int:
        with read_session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(Referral)).one())


def _days_text(days: float) -> str:
    if days < 1:
        return "1日以内"
    return f"{round(days, 1):g}日"
