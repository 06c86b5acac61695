"""Japanese wording for pages: vocabulary labels, dates, money, schedules, sources and freshness."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from typing import Any

from resdb.domain import schedule as schedule_mod
from resdb.domain.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAYS

SAMPLE_LABEL = "サンプル（架空）"
PLAN_TITLE = "重層的支援体制整備事業実施計画"
# The five plans the shipped facts come from, by the number their file names start with.
PLAN_MUNICIPALITIES: dict[str, str] = {
    "000": "いわき市",
    "001": "和泊町",
    "002": "芦屋市",
    "003": "稲城市",
    "004": "射水市",
}
_PLAN_FILE = re.compile(r"^(\d{3})_[0-9a-f]{8,}\.txt$")


def kind_label(kind: str | None) -> str:
    return KINDS.get(kind or "", KINDS["other"])


def target_label(target: str | None) -> str:
    return TARGETS.get(target or "", target or "")


def weekday_label(weekday: str | None) -> str:
    return WEEKDAYS.get(weekday or "", weekday or "")


def group_size_label(size: str | None) -> str:
    return GROUP_SIZES.get(size or "", "")


def yen(value: int | None) -> str:
    if value is None:
        return "不明"
    if value == 0:
        return "無料"
    return f"{value:,}円"


def parse_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def date_ja(value: Any) -> str:
    day = parse_date(value)
    return f"{day.year}年{day.month}月{day.day}日" if day else "不明"


def session_ja(moment: datetime) -> str:
    """「12月3日（水）13:30」."""
    weekday = "月火水木金土日"[moment.weekday()]
    return f"{moment.month}月{moment.day}日（{weekday}）{moment:%H:%M}"


def describe_schedule(schedule: Any) -> str:
    """The schedule in words; "" when none, a neutral phrase when the stored schedule cannot be read."""
    try:
        return schedule_mod.describe(schedule)
    except (ValueError, TypeError):
        return "日程の記載を確認中です"


def upcoming(
    listing: dict[str, Any], today: date, count: int = 6, days: int = 42
) -> list[datetime]:
    """The next session start times (Japanese public holidays skipped unless the listing says it opens)."""
    skip = listing.get("holidays_closed") is not False
    try:
        return schedule_mod.next_sessions(
            listing.get("schedule") or [], today, days=days, skip_holidays=skip
        )[:count]
    except (ValueError, TypeError):
        return []


def freshness(verified_at: Any, today: date, stale_days: int) -> dict[str, Any]:
    """最終確認日 and whether it needs a caution (unknown, or older than `stale_days`)."""
    day = parse_date(verified_at)
    if day is None:
        return {
            "text": "不明",
            "caution": "この情報がいつ確認されたかわかりません。利用の前に連絡先へお問い合わせください。",
        }
    age = (today - day).days
    if age > stale_days:
        return {
            "text": date_ja(day),
            "caution": "最後の確認から1年以上たっています。内容が変わっている可能性があるため、利用の前にお問い合わせください。",
        }
    return {"text": date_ja(day), "caution": None}


def source_label(source: str | None) -> dict[str, str | None]:
    """「射水市 重層的支援体制整備事業実施計画」 plus the file name for plan files; other sources as given."""
    from resdb.intake import is_file_name

    if not source or is_file_name(
        source
    ):  # an uploaded file's name is not a source a resident can check
        return {"label": "出典の記載なし", "file": None}
    match = _PLAN_FILE.match(source.strip())
    if match and match.group(1) in PLAN_MUNICIPALITIES:
        return {
            "label": f"{PLAN_MUNICIPALITIES[match.group(1)]} {PLAN_TITLE}",
            "file": source.strip(),
        }
    if source == "sample":
        return {"label": "説明用の架空のサンプルデータ", "file": None}
    if source == "synthetic":
        return {"label": "合成データ（性能試験用・架空）", "file": None}
    return {"label": source, "file": None}


def safe_url(value: str | None) -> str | None:
    """Only http(s) links become hrefs (a stored `javascript:` URL is shown as text, never linked)."""
    text = (value or "").strip()
    return text if re.match(r"^https?://[^\s<>\"']+$", text, re.IGNORECASE) else None


def tel_href(value: str | None) -> str | None:
    digits = re.sub(r"[^0-9+]", "", value or "")
    return f"tel:{digits}" if len(digits) >= 6 else None


def visit_text(listing: dict[str, Any]) -> str:
    """What a visitor should know before a first look (見学), from what the listing says."""
    if not listing:
        return "お問い合わせください"
    parts = []
    reserve = listing.get("reservation_required")
    if reserve is True:
        parts.append("見学・参加の前に予約が必要です")
    elif reserve is False:
        parts.append("予約なしで見学できます")
    else:
        parts.append("見学の方法はお問い合わせください")
    if listing.get("accepts_referrals") is False:
        parts.append("いまは紹介での受け入れをしていません")
    elif listing.get("capacity") == 0:
        parts.append("いまは空きがありません")
    if listing.get("barrier_free"):
        parts.append("バリアフリー")
    if listing.get("pickup"):
        parts.append("送迎あり")
    return "。".join(parts[:1]) + ("（" + "・".join(parts[1:]) + "）" if parts[1:] else "")


def jst_time(value: Any) -> str:
    """A moment (unix seconds or datetime; naive means UTC) as 「14:05」 in Japan time."""
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tokyo)
    elif isinstance(value, datetime):
        moment = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tokyo)
    else:
        return ""
    return f"{moment:%H:%M}"


def coordinator_name(account: Any) -> str:
    """The coordinator's name for the person to see (a blank to write in when the account has none)."""
    name = getattr(account, "display_name", None) if account is not None else None
    return name or "＿＿＿＿＿＿＿＿（相談員の名前）"


def yes_no(value: bool | None) -> str:
    return "不明" if value is None else ("あり" if value else "なし")


def register_filters(app: Any) -> None:
    """Template filters and globals used by the pages."""
    app.jinja_env.filters.update(
        kind_label=kind_label,
        target_label=target_label,
        weekday_label=weekday_label,
        group_size_label=group_size_label,
        yen=yen,
        date_ja=date_ja,
        session_ja=session_ja,
        describe_schedule=describe_schedule,
        safe_url=safe_url,
        tel_href=tel_href,
        yes_no=yes_no,
        visit_text=visit_text,
        jst_time=jst_time,
    )
    app.jinja_env.globals.update(
        KINDS=KINDS,
        TARGETS=TARGETS,
        WEEKDAYS=WEEKDAYS,
        SAMPLE_LABEL=SAMPLE_LABEL,
        source_label=source_label,
        coordinator_name=coordinator_name,
        now_ts=time.time,
    )
