"""イベント一覧 in and out: one row per event day read into listings with a schedule; one row per recurring schedule written."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from resdb.domain import schedule as schedule_mod
from resdb.domain.vocab import kind_id
from resdb.opendata.cells import (
    CODE,
    WEEKDAY_IDS,
    Table,
    _code6,
    _common,
    _cost,
    _listing_id,
    _notes,
    _row_error,
    _time,
    guess_kind,
)
from resdb.validation import parse_date, schedule_from_text

# Current header sets (デジタル庁 自治体標準オープンデータセット).
EVENT_HEADERS = (
    CODE,
    "NO",
    "都道府県名",
    "市区町村名",
    "イベント名",
    "イベント名_カナ",
    "イベント名_英語",
    "開始日",
    "終了日",
    "開始時間",
    "終了時間",
    "開始日時特記事項",
    "説明",
    "料金(基本)",
    "料金(詳細)",
    "連絡先名称",
    "連絡先電話番号",
    "連絡先内線番号",
    "主催者",
    "場所名称",
    "住所",
    "方書",
    "緯度",
    "経度",
    "アクセス方法",
    "駐車場情報",
    "定員",
    "参加申込終了日",
    "参加申込終了時間",
    "参加申込方法",
    "URL",
    "備考",
)


# --- イベント一覧 ---------------------------------------------------------------------------------
def infer_pattern(days: list[date]) -> list[dict[str, Any]] | None:
    """Schedule entries (without times) whose sessions between the first and last date are exactly `days`;
    None when the dates follow no weekly / 第n週 pattern."""
    by_weekday: dict[int, list[date]] = {}
    for day in sorted(set(days)):
        by_weekday.setdefault(day.weekday(), []).append(day)
    entries: list[dict[str, Any]] = []
    for weekday, dates in sorted(by_weekday.items()):
        if len(dates) < 2:
            return None
        first, last = dates[0], dates[-1]
        span = [first + timedelta(days=7 * n) for n in range((last - first).days // 7 + 1)]
        if span == dates:
            entries.append({"weekday": WEEKDAY_IDS[weekday]})
            continue
        weeks = sorted({schedule_mod.week_of_month(d) for d in dates})
        if [d for d in span if schedule_mod.week_of_month(d) in weeks] != dates:
            return None
        entries.append({"weekday": WEEKDAY_IDS[weekday], "weeks": weeks})
    return entries


@dataclass
class _EventGroup:
    first_row: int
    base: dict[str, Any]
    dates: dict[tuple[str, str], list[tuple[int, date]]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None


def read_events(
    table: Table, *, default_kind: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """イベント一覧 rows → listings. Rows of one event (same イベント名, 場所名称, 住所) are one listing:
    a row with 開始日時特記事項 like 「毎月第1・第3水曜」 is a recurring schedule; rows that are single
    sessions are gathered and their dates must follow a weekly or 第n週 pattern."""
    groups: dict[tuple[str, str, str], _EventGroup] = {}
    for row_no, cells, get in table.filled_rows():
        name = get("イベント名")
        if not name:
            yield row_no, _row_error("イベント名", "イベント名が空です。催しの名前を書いてください")
            continue
        key = (name, get("場所名称"), get("住所"))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _EventGroup(row_no, _event_base(table, cells, default_kind))
        try:
            start, end = _time(get("開始時間")), _time(get("終了時間"))
        except ValueError:
            group.error = group.error or {
                **_row_error(
                    "開始時間",
                    f"時刻「{get('開始時間')}〜{get('終了時間')}」を読めません。10:00 のように書いてください",
                ),
                "row": row_no,
            }
            continue
        note = get("開始日時特記事項")
        pattern = None
        if note:
            try:
                pattern = schedule_from_text(
                    note if start is None else f"{note} {start}〜{end or start}"
                )
            except ValueError:
                pattern = None
        if pattern:
            group.entries.extend(pattern)
            continue
        if start is None or end is None:
            group.error = group.error or {
                **_row_error(
                    "開始時間", "開始時間・終了時間がありません。10:00 のように両方書いてください"
                ),
                "row": row_no,
            }
            continue
        text_day = get("開始日")
        try:
            day = parse_date(text_day)
        except ValueError:
            group.error = group.error or {
                **_row_error(
                    "開始日",
                    f"開始日「{text_day}」を読めません。2026-12-03 のように書くか、"
                    "開始日時特記事項に「毎週木曜」「毎月第1・第3木曜」のように繰り返しを書いてください",
                ),
                "row": row_no,
            }
            continue
        end_day = get("終了日")
        if end_day and end_day != text_day:
            group.error = group.error or {
                **_row_error(
                    "終了日",
                    f"{text_day}〜{end_day}の期間になっています。1回ごとに1行にするか、"
                    "開始日時特記事項に「毎週木曜」のように繰り返しを書いてください",
                ),
                "row": row_no,
            }
            continue
        group.dates.setdefault((start, end), []).append((row_no, day))
    for group in groups.values():
        record = _finish_event(group)
        yield record.pop("row", group.first_row), record


def _event_base(table: Table, cells: list[Any], default_kind: str | None) -> dict[str, Any]:
    get = functools.partial(table.cell, cells)
    code = _code6(get(CODE)) if get(CODE) else None
    name = get("イベント名")
    kind_text = get("種別") or get("カテゴリー") or get("カテゴリ")
    kind = (
        (kind_id(kind_text) if kind_text else None) or default_kind or guess_kind(name, get("説明"))
    )
    venue = get("場所名称")
    if get("方書"):
        venue = f"{venue}（{get('方書')}）" if venue else get("方書")
    fee_basic, fee_detail = get("料金(基本)"), get("料金(詳細)")
    apply = get("参加申込方法")
    record: dict[str, Any] = {
        "name": name,
        "name_kana": get("イベント名_カナ") or None,
        "description": get("説明") or None,
        "municipality_code": code,
        "address": get("住所") or None,
        "venue": venue or None,
        "lat": get("緯度") or None,
        "lon": get("経度") or None,
        "operator": get("主催者") or get("連絡先名称") or None,
        "phone": get("連絡先電話番号") or None,
        "url": get("URL") or None,
        "cost_yen": _cost(fee_basic) if _cost(fee_basic) is not None else _cost(fee_detail),
        "capacity": get("定員") or None,
        "reservation_required": None
        if not apply
        else not any(w in apply for w in ("不要", "なし", "直接")),
        "notes": _notes(
            get("備考"),
            ("料金", fee_detail),
            ("申込", apply),
            ("アクセス", get("アクセス方法")),
            ("駐車場", get("駐車場情報")),
        ),
        "__no__": get("NO"),
    }
    if kind is None:
        record["__row_error__"] = (
            "種別が分かりません。「種別」の列（通いの場・居場所 など）を加えるか、"
            "取り込むときに種別を選んでください"
        )
        record["__row_field__"] = "種別"
    else:
        record["kind"] = kind
    return {k: v for k, v in record.items() if v is not None}


def _finish_event(group: _EventGroup) -> dict[str, Any]:
    record = dict(group.base)
    no = record.pop("__no__", "")
    if group.error is not None:
        return group.error
    if "__row_error__" in record:
        return record
    entries = list(group.entries)
    for (start, end), dated in group.dates.items():
        days = [d for _, d in dated]
        pattern = infer_pattern(days)
        if pattern is None:
            rows = "、".join(f"{r}行目" for r, _ in dated[:10])
            listed = "、".join(d.isoformat() for d in sorted(days)[:6])
            if len(days) == 1:
                return _row_error(
                    "開始日",
                    f"1回だけの開催（{listed}）は毎週・第n週の日程で表せません。"
                    "繰り返しなら開始日時特記事項に「毎週木曜」「毎月第1・第3木曜」のように書いてください",
                )
            return _row_error(
                "開始日",
                f"{rows}: 日付（{listed}）が毎週・第n週の決まった曜日になっていません。"
                "開始日時特記事項に「毎月第1・第3木曜」のように書くか、日付を確かめてください",
            )
        entries.extend({**entry, "start": start, "end": end} for entry in pattern)
    unique = []
    for entry in entries:
        if entry not in unique:
            unique.append(entry)
    record["schedule"] = unique
    listing_no = no.split("#")[0]
    if (
        listing_no
        and not listing_no.isdigit()
        and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", listing_no)
    ):
        record["id"] = listing_no
    else:
        record["id"] = _listing_id(
            "ev",
            record.get("municipality_code"),
            record["name"],
            record.get("venue", ""),
            record.get("address", ""),
        )
    return record


def write_events(
    listings: Iterable[dict[str, Any]], *, today: date | None = None
) -> Iterator[list[str]]:
    """One row per schedule entry: 開始日 = the next session, 開始日時特記事項 = the pattern in words."""
    today = today or date.today()
    for listing in listings:
        entries = listing.get("schedule") or []
        for n, entry in enumerate(entries):
            sessions = schedule_mod.next_sessions([entry], today, days=70, skip_holidays=False)
            pattern = schedule_mod.describe([{**entry}]).split(" ")[0]
            yield _event_row(
                listing, n, entry, sessions[0].date().isoformat() if sessions else "", pattern
            )


def _event_row(
    listing: dict[str, Any], n: int, entry: dict[str, Any], first: str, pattern: str
) -> list[str]:
    base = _common(listing)
    values = {
        **base,
        "NO": listing["id"] if n == 0 else f"{listing['id']}#{n + 1}",
        "イベント名": listing.get("name") or "",
        "イベント名_カナ": listing.get("name_kana") or "",
        "開始日": first,
        "開始時間": entry.get("start") or "",
        "終了時間": entry.get("end") or "",
        "開始日時特記事項": pattern,
        "説明": listing.get("description") or "",
        "料金(基本)": ""
        if listing.get("cost_yen") is None
        else ("無料" if listing["cost_yen"] == 0 else f"{listing['cost_yen']}円"),
        "連絡先名称": listing.get("operator") or "",
        "連絡先電話番号": listing.get("phone") or "",
        "主催者": listing.get("operator") or "",
        "場所名称": listing.get("venue") or "",
        "定員": "" if listing.get("capacity") is None else str(listing["capacity"]),
        "参加申込方法": "要申込"
        if listing.get("reservation_required")
        else ("申込不要" if listing.get("reservation_required") is False else ""),
    }
    return [values.get(h, "") for h in EVENT_HEADERS]
