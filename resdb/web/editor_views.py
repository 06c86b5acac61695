"""What the editor's screens show: the filtered, paged verification queue, Japanese values and JST times."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from resdb.domain.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAYS

TOKYO = ZoneInfo("Asia/Tokyo")
QUEUE_PAGE_SIZE = 25
STATUS_LABELS = {"draft": "下書き", "published": "公開中", "deleted": "削除済み"}
PRECISION_LABELS = {
    "exact": "番地まで",
    "town": "町字のおおよその位置",
    "district": "地区のおおよその位置",
    "service_area": "担当地区のおおよその位置",
}
ISSUES = {"no_contact": "連絡先なし", "no_schedule": "日程なし"}


def jst(value: Any) -> str:
    """A stored moment as 「2026年11月30日 21:19」 in Japan time (naive values are UTC, as stored)."""
    if value in (None, ""):
        return "—"
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return f"{value.year}年{value.month}月{value.day}日"
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if moment is None:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(TOKYO)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def jst_iso(value: Any) -> str:
    """The same moment as ISO 8601 with +09:00 (for <time datetime>)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(TOKYO).isoformat(timespec="seconds")
    return str(value or "")


def field_value(key: str, value: Any) -> Any:
    """A stored value with its code replaced by the Japanese label (kind, targets, group size, status …)."""
    if value is None:
        return None
    if key == "kind":
        return KINDS.get(value, value)
    if key == "targets" and isinstance(value, list):
        return [TARGETS.get(v, v) for v in value]
    if key == "group_size":
        return GROUP_SIZES.get(value, value)
    if key == "status":
        return STATUS_LABELS.get(value, value)
    if key == "location_precision":
        return PRECISION_LABELS.get(value, value)
    if key == "verified_at":
        return jst(value) if value else None
    if key == "service_area" and isinstance(value, Mapping):
        districts = value.get("districts") or []
        return "、".join(districts) if districts else "（範囲の図形）"
    if key == "schedule" and isinstance(value, list):
        return value
    if key == "weekday":
        return WEEKDAYS.get(value, value)
    return value


def has_contact(listing: Mapping[str, Any]) -> bool:
    return any((listing.get(k) or "").strip() for k in ("phone", "email", "url"))


def has_schedule(listing: Mapping[str, Any]) -> bool:
    return bool(listing.get("schedule"))


@dataclass
class QueuePage:
    items: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    counts: dict[str, int]  # by issue, before the issue filter


def queue_page(
    queue: Iterable[dict[str, Any]],
    *,
    municipality: str | None = None,
    kind: str | None = None,
    issue: str | None = None,
    page: int = 1,
    size: int = QUEUE_PAGE_SIZE,
) -> QueuePage:
    """The verification queue (already oldest first) for one municipality and kind, one page at a time."""
    rows = [
        x
        for x in queue
        if (not municipality or x.get("municipality_code") == municipality)
        and (not kind or x.get("kind") == kind)
    ]
    counts = {
        "no_contact": sum(1 for x in rows if not has_contact(x)),
        "no_schedule": sum(1 for x in rows if not has_schedule(x)),
    }
    if issue == "no_contact":
        rows = [x for x in rows if not has_contact(x)]
    elif issue == "no_schedule":
        rows = [x for x in rows if not has_schedule(x)]
    pages = max(1, math.ceil(len(rows) / size))
    page = min(max(1, page), pages)
    return QueuePage(rows[(page - 1) * size : page * size], len(rows), page, pages, counts)
