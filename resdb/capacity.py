"""Open places as reported by hosts (「今月の受け入れ可能: 2人」): kept with their date, shown with their age,
exported as HSDS 3.1 `service_capacity`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from resdb.db import read_session
from resdb.models import CapacityReport

JST = timezone(timedelta(hours=9))
OPEN_PLACES_MAX = 999
REPORTER_LABELS = {"host": "受け入れ先", "editor": "編集者", "admin": "管理者"}


def month_of(today: date) -> str:
    return f"{today.year:04d}-{today.month:02d}"


def record(
    session: Session, listing_id: str, open_places: int, *, actor: str, role: str, today: date
) -> None:
    """One report in the caller's transaction (the listing's own change is in the same one)."""
    session.add(
        CapacityReport(
            listing_id=listing_id,
            open_places=open_places,
            month=month_of(today),
            actor=actor[:200],
            role=role[:20],
        )
    )


def latest(engine: Engine, listing_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest report per listing: {listing_id: {open_places, month, reported_at, role}}."""
    if not listing_ids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    with read_session(engine) as session:
        rows = session.exec(
            select(CapacityReport)
            .where(col(CapacityReport.listing_id).in_(sorted(set(listing_ids))))
            .order_by(col(CapacityReport.id))
        ).all()
    for row in rows:
        out[row.listing_id] = {
            "open_places": row.open_places,
            "month": row.month,
            "reported_at": _aware(row.reported_at),
            "role": row.role,
        }
    return out


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def describe(
    listing: dict[str, Any], report: dict[str, Any] | None, today: date
) -> dict[str, Any] | None:
    """What to show next to a listing's capacity: the number, who reported it, when, and how old it is.

    A report counts only while it still matches the listing's capacity (an editor may have changed it
    since through an import); otherwise the number is shown with 「報告日不明」."""
    capacity = listing.get("capacity")
    if capacity is None:
        return None
    if report is None or report["open_places"] != capacity:
        return {
            "open_places": capacity,
            "text": f"受け入れ可能: {capacity}人",
            "age": "報告日不明",
            "stale": True,
            "reported_on": None,
            "days": None,
        }
    reported_on = report["reported_at"].astimezone(JST).date()
    days = max((today - reported_on).days, 0)
    this_month = report["month"] == month_of(today)
    label = "今月の受け入れ可能" if this_month else f"{int(report['month'][5:])}月の受け入れ可能"
    age = "今日" if days == 0 else f"{days}日前"
    who = REPORTER_LABELS.get(report["role"], report["role"])
    return {
        "open_places": capacity,
        "text": f"{label}: {capacity}人",
        "age": f"{reported_on.month}月{reported_on.day}日に{who}が報告（{age}）",
        "stale": not this_month or days > 31,
        "reported_on": reported_on,
        "days": days,
    }


def describe_many(
    engine: Engine, listings: list[dict[str, Any]], today: date
) -> dict[str, dict[str, Any]]:
    reports = latest(engine, [x["id"] for x in listings if x.get("capacity") is not None])
    out = {}
    for listing in listings:
        info = describe(listing, reports.get(listing["id"]), today)
        if info is not None:
            out[listing["id"]] = info
    return out


def hsds_service_capacity(
    listing: dict[str, Any], report: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """HSDS 3.1 `service_capacity` rows for one listing (unit: persons), `updated` = when it was reported."""
    capacity = listing.get("capacity")
    if capacity is None:
        return []
    matched = report is not None and report["open_places"] == capacity
    return [
        {
            "id": f"cap:{listing['id']}",
            "service_id": listing["id"],
            "unit": {"id": "unit:person", "name": "人"},
            "available": capacity,
            "maximum": None,
            "description": "参加支援で紹介を受け入れられる人数（月ごとの報告）",
            "updated": report["reported_at"].isoformat() if matched and report else None,
        }
    ]
