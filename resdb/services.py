"""One service call per action (over 500 lines: the actions are one idea and read best side by
side): every door (editor pages, JSON API, CLI) changes data only through here.

Each call checks the actor with the one policy function (`resdb.policy.authorize`), validates and places
once, and writes the row, its history, its audit entry and its index change in one transaction (the
directory's write hook runs the policy inside that transaction, so a restore or an import cannot move a
listing out of the actor's scope). `OUTCOMES` maps every refusal to an HTTP status and a CLI exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session

from resdb import capacity
from resdb.accounts import Account
from resdb.audit import audit
from resdb.directory import Conflict, Directory, ImportReport, NotFound, StaleEdit
from resdb.policy import Forbidden, authorize
from resdb.referrals import Referrals
from resdb.sheets import Sheets
from resdb.validation import Problem, ValidationFailed
from resdb.workspace import RateLimited, Workspace

# The command line acts as an administrator (whoever runs it can open the database anyway), unless
# `resdb import --as EMAIL` names an account whose scope then applies.
SYSTEM_ID = 0


def system_actor(name: str) -> Account:
    return Account(SYSTEM_ID, name[:200], "admin")


@dataclass(frozen=True)
class Outcome:
    """How a refusal is reported: HTTP status, the API's error code, the CLI's exit code."""

    status: int
    code: str
    exit_code: int
    title: str


# The one place where refusals become statuses and exit codes (first match wins: subclasses first).
OUTCOMES: tuple[tuple[type[Exception], Outcome], ...] = (
    (ValidationFailed, Outcome(422, "invalid", 1, "入力内容に問題があります")),
    (NotFound, Outcome(404, "not_found", 3, "見つかりません")),
    (Forbidden, Outcome(403, "forbidden", 4, "権限がありません")),
    (StaleEdit, Outcome(412, "stale", 5, "他の人が先に更新しました")),
    (Conflict, Outcome(409, "conflict", 6, "競合があります")),
    (RateLimited, Outcome(429, "rate_limited", 7, "アクセスが集中しています")),
)
REFUSALS: tuple[type[Exception], ...] = tuple(kind for kind, _ in OUTCOMES)


def outcome(error: BaseException) -> Outcome | None:
    for kind, result in OUTCOMES:
        if isinstance(error, kind):
            return result
    return None


def message(error: BaseException) -> str:
    """The Japanese message of a refusal (field labels for validation; never the values typed)."""
    from resdb.fields import label

    result = outcome(error)
    if isinstance(error, ValidationFailed):
        parts = [f"{label(p.field)}（{p.field}）: {p.message}" for p in error.problems[:5]]
        return "入力内容に問題があります: " + "、".join(parts)
    if isinstance(error, StaleEdit):
        return (
            f"この掲載情報は読み込んだ後に更新されています（現在の版 {error.current['version']}、"
            f"送信された版 {error.expected_version}）。最新の内容を読み込み直してから編集してください。"
        )
    if isinstance(error, NotFound):
        return "掲載情報が見つかりません"
    if isinstance(error, Forbidden | Conflict | RateLimited) and str(error):
        return str(error)
    return result.title if result else "システムエラーが発生しました"


@dataclass
class Services:
    """The actions on one directory; `actor` is always the first argument."""

    directory: Directory

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.directory)

    @staticmethod
    def _scope(
        actor: Account, action: str
    ) -> Callable[[Session, dict[str, Any] | None, dict[str, Any]], None]:
        """The write hook: the policy sees the listing before and after, inside the write's transaction."""

        def check(_session: Session, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
            authorize(actor, action, before, after)

        return check

    # -- reading what only staff see ----------------------------------------------------------
    def listing_for_edit(
        self, actor: Account, listing_id: str, *, allow_deleted: bool = False
    ) -> dict[str, Any]:
        """A listing (drafts too) the actor may edit: NotFound when missing (or deleted), Forbidden outside scope."""
        listing = self.directory.get(listing_id, include_unpublished=True)
        if listing["status"] == "deleted" and not allow_deleted:
            raise NotFound(listing_id)
        authorize(actor, "listing.read_private", listing)
        return listing

    def history(self, actor: Account, listing_id: str) -> list[dict[str, Any]]:
        self.listing_for_edit(actor, listing_id, allow_deleted=True)
        return self.directory.history(listing_id)

    # -- listings ------------------------------------------------------------------------------
    def create(self, actor: Account, raw: dict[str, Any]) -> dict[str, Any]:
        """A new listing; an editor's missing municipality / operator default to their own scope."""
        authorize(actor, "listing.create")
        raw = dict(raw)
        if actor.role == "editor":
            if actor.municipality_code and not raw.get("municipality_code"):
                raw["municipality_code"] = actor.municipality_code
            if actor.operator and not raw.get("operator"):
                raw["operator"] = actor.operator
        return self.directory.create(
            raw, actor=actor.email, hook=self._scope(actor, "listing.create")
        )

    def update(
        self,
        actor: Account,
        listing_id: str,
        raw: dict[str, Any],
        *,
        expected_version: int | None,
        action: str = "update",
        today: date | None = None,
    ) -> dict[str, Any]:
        """An edit; a changed capacity is kept as a dated capacity report in the same transaction."""
        authorize(actor, "listing.update")
        scope = self._scope(actor, "listing.update")

        def check(session: Session, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
            scope(session, before, after)
            if (
                before is not None
                and after.get("capacity") is not None
                and after["capacity"] != before.get("capacity")
            ):
                capacity.record(
                    session,
                    after["id"],
                    after["capacity"],
                    actor=actor.email,
                    role=actor.role,
                    today=today or date.today(),
                )

        return self.directory.update(
            listing_id,
            raw,
            actor.email,
            expected_version=expected_version,
            action=action,
            hook=check,
        )

    def report_capacity(
        self, actor: Account, listing_id: str, open_places: int | None, *, today: date | None = None
    ) -> dict[str, Any]:
        """「今月の受け入れ可能: N人」: the listing's capacity and a dated report, in one transaction (a report of
        an unchanged number still renews its date)."""
        authorize(actor, "listing.capacity")
        if (
            open_places is None
            or isinstance(open_places, bool)
            or not isinstance(open_places, int)
            or not 0 <= open_places <= capacity.OPEN_PLACES_MAX
        ):
            raise ValidationFailed(
                [
                    Problem(
                        "capacity",
                        f"受け入れ可能な人数は 0〜{capacity.OPEN_PLACES_MAX} の数字で入れてください",
                    )
                ]
            )
        scope = self._scope(actor, "listing.capacity")

        def check(session: Session, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
            scope(session, before, after)
            capacity.record(
                session,
                after["id"],
                open_places,
                actor=actor.email,
                role=actor.role,
                today=today or date.today(),
            )
            audit(
                session,
                actor.email,
                "listing.capacity",
                "listing",
                after["id"],
                f"open_places={open_places}",
            )

        return self.directory.update(
            listing_id,
            {"capacity": open_places},
            actor.email,
            expected_version=None,
            action="capacity",
            hook=check,
        )

    def verify(
        self,
        actor: Account,
        listing_id: str,
        *,
        on: date | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        authorize(actor, "listing.verify")
        on = min(on or date.today(), date.today())  # never a future date
        return self.directory.verify(
            listing_id,
            actor.email,
            on=on,
            expected_version=expected_version,
            hook=self._scope(actor, "listing.verify"),
        )

    def delete(
        self, actor: Account, listing_id: str, *, expected_version: int | None
    ) -> dict[str, Any]:
        authorize(actor, "listing.delete")
        return self.directory.delete(
            listing_id,
            actor.email,
            expected_version=expected_version,
            hook=self._scope(actor, "listing.delete"),
        )

    def restore(
        self, actor: Account, listing_id: str, *, to_version: int | None = None
    ) -> dict[str, Any]:
        """Undelete, or bring back an old version: the restored content must stay in the actor's scope too."""
        authorize(actor, "listing.restore")
        return self.directory.restore(
            listing_id,
            actor.email,
            to_version=to_version,
            hook=self._scope(actor, "listing.restore"),
        )

    def import_records(
        self,
        actor: Account,
        records: Iterable[tuple[int, dict[str, Any]]],
        *,
        source_name: str,
        dry_run: bool = False,
        read_problems: Sequence[Problem] = (),
        progress: Callable[[int], None] | None = None,
        status: str = "published",
        good_rows_only: bool = False,
        source: str | None = None,
    ) -> ImportReport:
        """Import (all-or-nothing, or only the good rows). The dry run names every row the real import
        would refuse, scope included; file-level problems (`read_problems`) make it a dry run. `records`
        may be a lazy stream: rows are checked one by one (stored listings looked up only for a scoped
        editor). New listings land as `status` (draft for review unless the importer publishes)."""
        authorize(actor, "listing.import")
        scoped = actor.role != "admin" and bool(actor.municipality_code or actor.operator)

        def in_scope(row_no: int, clean: dict[str, Any]) -> list[Problem]:
            stored = None
            if scoped and clean.get("id"):
                found = self.directory.get_many([clean["id"]], include_unpublished=True)
                stored = found[0] if found else None
            try:
                authorize(actor, "listing.import", stored, clean)
            except Forbidden as refused:
                field = "municipality_code" if actor.municipality_code else "operator"
                return [Problem(field, f"{refused}（この行は取り込めません）", row_no)]
            return []

        report = self.directory.import_records(
            records,
            actor=actor.email,
            source_name=source_name,
            dry_run=dry_run or bool(read_problems),
            progress=progress,
            hook=self._scope(actor, "listing.import"),
            check=in_scope,
            status=status,
            good_rows_only=good_rows_only,
            source=source,
        )
        if read_problems:
            report.problems[:0] = list(read_problems)
            report.dry_run = dry_run
        return report

    def propose_edit(self, actor: Account, listing_id: str, raw: dict[str, Any]) -> int:
        """A host's edit held for an editor's review (RESDB_HOST_EDITS_REVIEWED): it waits in the corrections
        queue, where accepting it goes through the listing's history like any edit."""
        from resdb.models import ChangeRequest
        from resdb.validation import validate_listing

        listing = self.listing_for_edit(actor, listing_id)
        clean, problems = validate_listing(raw, partial=True)
        if problems:
            raise ValidationFailed(problems)
        authorize(actor, "listing.update", listing, {**listing, **clean})
        changes = {
            k: (v.isoformat() if isinstance(v, date) else v)
            for k, v in clean.items()
            if listing.get(k) != v
        }
        from resdb.db import write_session

        with write_session(self.directory.engine) as session:
            request = ChangeRequest(
                listing_id=listing_id,
                proposed=changes,
                contact=actor.email[:200],
                message=f"受け入れ先「{actor.operator}」からの変更の提案",
            )
            session.add(request)
            session.flush()
            assert request.id is not None
            audit(
                session,
                actor.email,
                "correction.submit",
                "listing",
                listing_id,
                f"request {request.id} (host)",
            )
            return request.id

    # -- residents' corrections ----------------------------------------------------------------
    def submit_correction(
        self,
        listing_id: str,
        message: str,
        *,
        proposed: dict[str, Any] | None = None,
        contact: str | None = None,
        client: str | None = None,
    ) -> int:
        """A resident's report (no account: anyone may send one, within the spam limit); audited as `public`."""
        return self.workspace.submit_correction(
            listing_id, message, proposed=proposed, contact=contact, client=client
        )

    def review_correction(
        self,
        actor: Account,
        request_id: int,
        *,
        accept: bool,
        fields: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Accept (all proposed fields, or only `fields`) or reject a resident's correction."""
        authorize(actor, "listing.correction")
        return self.workspace.review_correction(
            request_id, actor, accept=accept, fields=fields, note=note
        )

    # -- cases ---------------------------------------------------------------------------------
    def save_case(
        self,
        actor: Account,
        *,
        pseudonym: str,
        legal_basis: str,
        person: dict[str, Any],
        notes: str | None = None,
        proposals: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        authorize(actor, "case.create")
        return self.workspace.save_case(
            actor,
            pseudonym=pseudonym,
            legal_basis=legal_basis,
            person=person,
            notes=notes,
            proposals=proposals,
        )

    def add_placement(
        self, actor: Account, case_id: int, listing_id: str, score: float | None = None
    ) -> int:
        authorize(actor, "case.create")
        return self.workspace.add_placement(case_id, actor, listing_id, score)

    def record(
        self,
        actor: Account,
        placement_id: int,
        *,
        kind: str,
        to_stage: str | None = None,
        note: str | None = None,
        next_follow_up: date | None = None,
    ) -> dict[str, Any]:
        """A stage change (提案 → 見学 → …), a follow-up or a host-support note."""
        authorize(actor, "case.create")
        return self.workspace.record(
            placement_id,
            actor,
            kind=kind,
            to_stage=to_stage,
            note=note,
            next_follow_up=next_follow_up,
        )

    # -- referrals (coordinator ↔ host) ---------------------------------------------------------
    @property
    def referrals(self) -> Referrals:
        return Referrals(self.directory)

    def send_referral(
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
        return self.referrals.send(
            actor,
            case_id,
            placement_id,
            pseudonym=pseudonym,
            proposed_dates=proposed_dates,
            helps=helps,
            contact_route=contact_route,
            confirmed=confirmed,
        )

    def answer_referral(
        self,
        actor: Account,
        referral_id: int,
        *,
        answer: str,
        reason: str | None = None,
        visit_date: date | None = None,
        today: date | None = None,
    ) -> dict[str, Any]:
        return self.referrals.answer(
            actor, referral_id, answer=answer, reason=reason, visit_date=visit_date, today=today
        )

    def referral_status(self, actor: Account, referral_id: int, to_status: str) -> dict[str, Any]:
        return self.referrals.set_status(actor, referral_id, to_status)

    def referral_attended(
        self, actor: Account, referral_id: int, on: date, *, today: date | None = None
    ) -> dict[str, Any]:
        return self.referrals.attended(actor, referral_id, on, today=today)

    # -- 相談依頼シート ----------------------------------------------------------------------------
    @property
    def sheets(self) -> Sheets:
        return Sheets(self.directory)

    def submit_sheet(
        self,
        actor: Account,
        *,
        area: str,
        observed: str,
        consent: str,
        supporter_contact: str,
        municipality_code: str,
    ) -> dict[str, Any]:
        return self.sheets.submit(
            actor,
            area=area,
            observed=observed,
            consent=consent,
            supporter_contact=supporter_contact,
            municipality_code=municipality_code,
        )

    def update_sheet(
        self, actor: Account, sheet_id: int, *, status: str, referred_to: str | None = None
    ) -> dict[str, Any]:
        return self.sheets.update(actor, sheet_id, status=status, referred_to=referred_to)
