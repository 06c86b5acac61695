"""介護サービス事業所一覧 and 子育て施設一覧 in and out: one row per facility."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from resdb.domain import schedule as schedule_mod
from resdb.domain.vocab import KINDS, WEEKDAYS, kind_id
from resdb.opendata.cells import (
    CODE,
    WEEKDAY_IDS,
    Table,
    _code6,
    _common,
    _fold,
    _listing_id,
    _notes,
    _row_error,
    _time,
    _weekdays,
    guess_kind,
)

KAIGO_HEADERS = (
    CODE,
    "NO",
    "都道府県名",
    "市区町村名",
    "名称",
    "名称_カナ",
    "事業所番号",
    "実施サービス",
    "住所",
    "方書",
    "緯度",
    "経度",
    "電話番号",
    "内線番号",
    "FAX番号",
    "法人の名称",
    "法人番号",
    "利用可能曜日",
    "利用可能日時特記事項",
    "定員",
    "URL",
    "備考",
)
KOSODATE_HEADERS = (
    CODE,
    "NO",
    "都道府県名",
    "市区町村名",
    "名称",
    "名称_カナ",
    "種別",
    "住所",
    "方書",
    "緯度",
    "経度",
    "アクセス方法",
    "駐車場情報",
    "電話番号",
    "内線番号",
    "FAX番号",
    "法人番号",
    "団体名",
    "認可等年月日",
    "収容定員",
    "受入年齢",
    "利用可能曜日",
    "開始時間",
    "終了時間",
    "利用可能日時特記事項",
    "一時預かりの有無",
    "URL",
    "備考",
)


# --- 介護サービス事業所一覧 -------------------------------------------------------------------------
def _hours(text: str) -> tuple[str, str] | None:
    match = re.search(
        r"(\d{1,2}[:時]\d{0,2})\s*[〜~\-ー－―から]+\s*(\d{1,2}[:時]\d{0,2})", _fold(text)
    )
    if not match:
        return None
    try:
        start, end = _time(match.group(1)), _time(match.group(2))
    except ValueError:
        return None
    return (start, end) if start and end and start < end else None


def read_facilities(
    table: Table, fmt: str, *, default_kind: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """介護サービス事業所一覧 / 子育て施設一覧 rows → one listing each (weekly schedule from 利用可能曜日 and hours)."""
    for row_no, _cells, get in table.filled_rows():
        name = get("名称")
        if not name:
            yield row_no, _row_error("名称", "名称が空です。施設・事業所の名前を書いてください")
            continue
        code = _code6(get(CODE)) if get(CODE) else None
        service = get("実施サービス") if fmt == "kaigo" else get("種別")
        kind = default_kind or (kind_id(service) if service else None) or guess_kind(service, name)
        if kind is None:
            kind = "other"
        days = _weekdays(get("利用可能曜日"))
        if fmt == "kosodate" and get("開始時間"):
            try:
                start, end = _time(get("開始時間")), _time(get("終了時間"))
            except ValueError:
                yield (
                    row_no,
                    _row_error(
                        "開始時間",
                        f"時刻「{get('開始時間')}〜{get('終了時間')}」を読めません。9:00 のように書いてください",
                    ),
                )
                continue
            hours = (start, end) if start and end else None
        else:
            hours = _hours(get("利用可能日時特記事項"))
        schedule = (
            [{"weekday": d, "start": hours[0], "end": hours[1]} for d in days] if hours else []
        )
        venue = get("方書") or None
        record: dict[str, Any] = {
            "name": name,
            "name_kana": get("名称_カナ") or None,
            "kind": kind,
            "municipality_code": code,
            "address": get("住所") or None,
            "venue": venue,
            "lat": get("緯度") or None,
            "lon": get("経度") or None,
            "phone": get("電話番号") or None,
            "url": get("URL") or None,
            "operator": (get("法人の名称") if fmt == "kaigo" else get("団体名")) or None,
            "capacity": (get("定員") if fmt == "kaigo" else get("収容定員")) or None,
            "targets": ["elderly"] if fmt == "kaigo" else ["children", "parents"],
            "activities": [service] if service else None,
            "schedule": schedule or None,
            "notes": _notes(
                get("備考"),
                (
                    "利用日時",
                    get("利用可能日時特記事項") if not schedule or fmt == "kosodate" else "",
                ),
                ("受入年齢", get("受入年齢") if fmt == "kosodate" else ""),
                ("一時預かり", get("一時預かりの有無") if fmt == "kosodate" else ""),
                ("事業所番号", get("事業所番号") if fmt == "kaigo" else ""),
            ),
        }
        if record["capacity"] is not None and not re.fullmatch(
            r"\d+\s*[人名]?", _fold(record["capacity"])
        ):
            record["notes"] = "\n".join(
                filter(None, [f"定員: {record.pop('capacity')}", record["notes"]])
            )
        no = get("NO")
        record["id"] = (
            no
            if no and not no.isdigit() and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", no)
            else _listing_id("kg" if fmt == "kaigo" else "ks", code, name, get("住所"))
        )
        yield row_no, {k: v for k, v in record.items() if v is not None}


def _days_text(listing: dict[str, Any]) -> str:
    days = {e.get("weekday") for e in listing.get("schedule") or []}
    return ",".join(WEEKDAYS[d] for d in WEEKDAY_IDS if d in days)


def write_kaigo(listings: Iterable[dict[str, Any]]) -> Iterator[list[str]]:
    for listing in listings:
        values = {
            **_common(listing),
            "NO": listing["id"],
            "名称": listing.get("name") or "",
            "名称_カナ": listing.get("name_kana") or "",
            "実施サービス": "、".join(listing.get("activities") or [])
            or KINDS.get(listing.get("kind") or "", ""),
            "電話番号": listing.get("phone") or "",
            "法人の名称": listing.get("operator") or "",
            "方書": listing.get("venue") or "",
            "利用可能曜日": _days_text(listing),
            "利用可能日時特記事項": schedule_mod.describe(listing.get("schedule") or []),
            "定員": "" if listing.get("capacity") is None else str(listing["capacity"]),
        }
        yield [values.get(h, "") for h in KAIGO_HEADERS]


def write_kosodate(listings: Iterable[dict[str, Any]]) -> Iterator[list[str]]:
    for listing in listings:
        entries = listing.get("schedule") or []
        weekly = [e for e in entries if not e.get("weeks")]
        same_hours = len({(e.get("start"), e.get("end")) for e in weekly}) == 1 and len(
            weekly
        ) == len(entries)
        values = {
            **_common(listing),
            "NO": listing["id"],
            "名称": listing.get("name") or "",
            "名称_カナ": listing.get("name_kana") or "",
            "種別": KINDS.get(listing.get("kind") or "", ""),
            "方書": listing.get("venue") or "",
            "電話番号": listing.get("phone") or "",
            "団体名": listing.get("operator") or "",
            "収容定員": "" if listing.get("capacity") is None else str(listing["capacity"]),
            "利用可能曜日": _days_text(listing),
            "開始時間": weekly[0]["start"] if same_hours and weekly else "",
            "終了時間": weekly[0]["end"] if same_hours and weekly else "",
            "利用可能日時特記事項": "" if same_hours else schedule_mod.describe(entries),
        }
        yield [values.get(h, "") for h in KOSODATE_HEADERS]
