"""相談依頼シート: a registered community supporter passes someone to the window that serves their address
(担当地区) or to the 総合窓口; only that window reads it; closed sheets are deleted after the retention period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from resdb import config
from resdb.accounts import Account
from resdb.audit import audit
from resdb.db import read_session, write_session
from resdb.directory import Conflict, Directory, NotFound
from resdb.fields import bad_text
from resdb.models import AuditEntry, ConsultSheet, utcnow
from resdb.policy import authorize
from resdb.validation import Problem, ValidationFailed

STATUSES: dict[str, str] = {
    "received": "受付",
    "in_progress": "対応中",
    "referred": "つないだ先",
    "closed": "終了",
}
STATUS_FLOW = ("received", "in_progress", "referred", "closed")
# What the supporter sees: only that the window received it, and that it was closed.
SUPPORTER_STATUS = {
    "received": "受け付けました",
    "in_progress": "受け付けました",
    "referred": "受け付けました",
    "closed": "終了しました",
}
CONSENT: dict[str, str] = {
    "agreed": "本人が相談に同意している",
    "not_yet": "まだ本人の同意はない（見守りの中で気づいた）",
    "unknown": "わからない",
}
AREA_MAX, OBSERVED_MAX, CONTACT_MAX, REFERRED_MAX = 300, 2000, 200, 300
GENERAL_PREFIX = "general:"
WINDOW_KINDS = ("center",)


def retention_days(environ: dict[str, str] | None = None) -> int:
    value = config.setting("RESDB_SHEET_RETENTION_DAYS", environ) or "365"
    try:
        return max(int(value), 1)
    except ValueError:
        return 365


@dataclass
class Sheets:
    directory: Directory

    @property
    def engine(self) -> Engine:
        return self.directory.engine

    # -- routing ---------------------------------------------------------------------------------
    def municipality_name(self, code: str | None) -> str:
        if not code:
            return ""
        found = self.directory.districts(code, "municipality")
        return found[0]["name"] if found else code

    def window_name(self, window: str) -> str:
        if window.startswith(GENERAL_PREFIX):
            name = self.municipality_name(window.removeprefix(GENERAL_PREFIX))
            return f"{name}の総合相談窓口" if name else "総合相談窓口"
        try:
            return str(self.directory.get(window, include_unpublished=True)["name"])
        except NotFound:
            return window

    def route(self, area: str, municipality_code: str) -> dict[str, Any]:
        """The window for an address or 町字: the center whose 担当地区 holds it, else the 総合窓口."""
        gazetteer = self.directory.gazetteer()
        placed = gazetteer.place_address(area, municipality_code)
        point: tuple[float, float] | None = None
        town = None
        if placed is not None and placed.municipality_code == municipality_code:
            point, town = (placed.lat, placed.lon), placed.town
        else:
            geometry, unresolved = gazetteer.resolve([area], municipality_code)
            if geometry is not None and not unresolved:
                p = geometry.representative_point()
                point, town = (p.y, p.x), area
        if point is not None:
            centers = [
                x
                for x in self.directory.areas_lookup(*point)
                if x.get("kind") in WINDOW_KINDS and x.get("municipality_code") == municipality_code
            ]
            if centers:
                window = sorted(centers, key=lambda x: x["id"])[0]
                return {"window": window["id"], "name": window["name"], "town": town, "found": True}
        general = GENERAL_PREFIX + municipality_code
        return {
            "window": general,
            "name": self.window_name(general),
            "town": town,
            "found": point is not None,
        }

    # -- the supporter's side ----------------------------------------------------------------------
    def submit(
        self,
        actor: Account,
        *,
        area: str,
        observed: str,
        consent: str,
        supporter_contact: str,
        municipality_code: str,
    ) -> dict[str, Any]:
        authorize(actor, "sheet.submit")
        texts = {
            "area": (area or "").strip(),
            "observed": (observed or "").strip(),
            "supporter_contact": (supporter_contact or "").strip(),
        }
        problems = []
        for name, limit, what in (
            ("area", AREA_MAX, "住所または町名"),
            ("observed", OBSERVED_MAX, "気づいたこと"),
            ("supporter_contact", CONTACT_MAX, "あなたへの連絡方法"),
        ):
            value = texts[name]
            if not value:
                problems.append(Problem(name, f"{what}を入れてください"))
            elif len(value) > limit:
                problems.append(Problem(name, f"{what}は{limit}文字以内にしてください"))
            elif why := bad_text(value):
                problems.append(Problem(name, why))
        if consent not in CONSENT:
            problems.append(Problem("consent", "本人の同意について選んでください"))
        if problems:
            raise ValidationFailed(problems)
        routed = self.route(texts["area"], municipality_code)
        with write_session(self.engine) as session:
            sheet = ConsultSheet(
                supporter_id=actor.id,
                window=routed["window"],
                municipality_code=municipality_code,
                area=texts["area"],
                observed=texts["observed"],
                consent=consent,
                supporter_contact=texts["supporter_contact"],
            )
            session.add(sheet)
            session.flush()
            assert sheet.id is not None
            # The audit entry names the window (counted by the indicators even after the sheet is deleted).
            audit(
                session,
                actor.email,
                "sheet.submit",
                "window",
                routed["window"],
                f"sheet {sheet.id}",
            )
            return {
                "id": sheet.id,
                "window": routed["window"],
                "window_name": routed["name"],
                "status": SUPPORTER_STATUS["received"],
            }

    def mine(self, actor: Account) -> list[dict[str, Any]]:
        """The supporter's own sheets: when, to which window, received or closed. Nothing else."""
        authorize(actor, "sheet.own", {"supporter_id": actor.id})
        with read_session(self.engine) as session:
            rows = session.exec(
                select(
                    ConsultSheet.id,
                    ConsultSheet.created_at,
                    ConsultSheet.window,
                    ConsultSheet.status,
                )
                .where(ConsultSheet.supporter_id == actor.id)
                .order_by(col(ConsultSheet.id).desc())
            ).all()
        return [
            {
                "id": i,
                "created_at": at,
                "window_name": self.window_name(w),
                "status": SUPPORTER_STATUS[s],
            }
            for i, at, w, s in rows
        ]

    # -- the receiving window ----------------------------------------------------------------------
    def queue(self, actor: Account, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """The window's sheets, open ones first (expired closed sheets are deleted first; the view is audited)."""
        authorize(actor, "sheet.read")
        self.purge(now=now)
        with write_session(self.engine) as session:
            rows = session.exec(
                select(ConsultSheet)
                .where(ConsultSheet.window == actor.window)
                .order_by(col(ConsultSheet.id).desc())
            ).all()
            audit(
                session, actor.email, "sheet.queue", "window", actor.window, f"{len(rows)} sheets"
            )
            items = [self._dict(r) for r in rows]
        return sorted(items, key=lambda x: (x["status"] == "closed", -x["id"]))

    def get(self, actor: Account, sheet_id: int) -> dict[str, Any]:
        with write_session(self.engine) as session:
            row = session.get(ConsultSheet, sheet_id)
            if row is None:
                raise NotFound(f"sheet {sheet_id}")
            authorize(actor, "sheet.read", {"window": row.window})
            audit(session, actor.email, "sheet.view", "sheet", str(sheet_id))
            return self._dict(row)

    def update(
        self, actor: Account, sheet_id: int, *, status: str, referred_to: str | None = None
    ) -> dict[str, Any]:
        """受付 → 対応中 → つないだ先 → 終了 (つないだ先 names where the person was connected)."""
        referred_to = (referred_to or "").strip() or None
        problems = []
        if status not in STATUSES:
            problems.append(Problem("status", "状況を一覧から選んでください"))
        if status == "referred" and not referred_to:
            problems.append(Problem("referred_to", "つないだ先を入れてください"))
        if referred_to and (len(referred_to) > REFERRED_MAX or bad_text(referred_to)):
            problems.append(
                Problem(
                    "referred_to", bad_text(referred_to) or f"{REFERRED_MAX}文字以内にしてください"
                )
            )
        if problems:
            raise ValidationFailed(problems)
        with write_session(self.engine) as session:
            row = session.get(ConsultSheet, sheet_id, with_for_update=True)
            if row is None:
                raise NotFound(f"sheet {sheet_id}")
            authorize(actor, "sheet.update", {"window": row.window})
            if row.status == "closed":
                raise Conflict("終了したシートは変更できません")
            before = row.status
            row.status, row.updated_at = status, utcnow()
            if referred_to:
                row.referred_to = referred_to
            if status == "closed":
                row.closed_at = utcnow()
            audit(
                session, actor.email, "sheet.status", "sheet", str(sheet_id), f"{before} → {status}"
            )
            return self._dict(row)

    def _dict(self, row: ConsultSheet) -> dict[str, Any]:
        data = row.model_dump()
        data["status_label"] = STATUSES[row.status]
        data["consent_label"] = CONSENT.get(row.consent, row.consent)
        data["window_name"] = self.window_name(row.window)
        return data

    # -- retention and counts ----------------------------------------------------------------------
    def purge(self, *, days: int | None = None, now: datetime | None = None) -> int:
        """Delete (not hide) sheets closed more than `days` ago (RESDB_SHEET_RETENTION_DAYS)."""
        cutoff = (now or utcnow()) - timedelta(days=days or retention_days())
        with write_session(self.engine) as session:
            ids = list(
                session.exec(
                    select(ConsultSheet.id).where(
                        ConsultSheet.status == "closed", col(ConsultSheet.closed_at) < cutoff
                    )
                ).all()
            )
            if not ids:
                return 0
            session.execute(delete(ConsultSheet).where(col(ConsultSheet.id).in_(ids)))
            audit(
                session, "system", "sheet.purge", "sheet", None, f"{len(ids)} sheets past retention"
            )
        return len(ids)

    def counts_by_window(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """相談依頼シート件数 by window in a period, from the audit log (kept after the sheets are deleted)."""
        with read_session(self.engine) as session:
            rows = session.exec(
                select(AuditEntry.target_id, func.count())
                .where(
                    AuditEntry.action == "sheet.submit", AuditEntry.at >= start, AuditEntry.at < end
                )
                .group_by(AuditEntry.target_id)
            ).all()
        return sorted(
            ({"window": w, "name": self.window_name(w or ""), "count": int(n)} for w, n in rows),
            key=lambda x: (-x["count"], x["name"]),
        )
