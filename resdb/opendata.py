"""自治体標準オープンデータセット formats in and out: イベント一覧, 介護サービス事業所一覧, 子育て施設一覧.

Reading maps a table (headers + rows) to listing records for `Directory.import_records`; a row that cannot
become a listing carries a Japanese `__row_error__` naming the field and what to write instead. Writing
gives the dataset's current header set, one row per listing (イベント一覧: one row per recurring schedule).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from resdb.domain import schedule as schedule_mod
from resdb.domain.vocab import KINDS, WEEKDAYS, kind_id
from resdb.validation import parse_date, schedule_from_text

_DAYS = "月火水木金土日"
WEEKDAY_IDS = tuple(WEEKDAYS)
CODE = "都道府県コード又は市区町村コード"

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

# Kinds guessed from a name or a service description when the file has no 種別 (first match wins).
_KIND_WORDS: tuple[tuple[str, str], ...] = (
    ("地域包括", "center"),
    ("相談", "center"),
    ("体操", "kayoi"),
    ("サロン", "kayoi"),
    ("通いの場", "kayoi"),
    ("通所型サービスB", "kayoi"),
    ("食堂", "shokudo"),
    ("子育て", "kosodate"),
    ("ひろば", "kosodate"),
    ("広場", "kosodate"),
    ("児童館", "kosodate"),
    ("カフェ", "ibasho"),
    ("居場所", "ibasho"),
    ("講座", "learning"),
    ("教室", "learning"),
    ("ボランティア", "volunteer"),
    ("就労", "work_trial"),
    ("地域活動支援", "chikatsu"),
)


def _fold(value: Any) -> str:
    return unicodedata.normalize("NFKC", "" if value is None else str(value)).strip()


def _header(value: Any) -> str:
    """Header text compared width-blind: 「料金（基本）」 = 「料金(基本)」, BOM and spaces dropped."""
    return re.sub(r"\s+", "", _fold(value).lstrip("\ufeff"))


def guess_kind(*texts: str | None) -> str | None:
    for text in texts:
        for word, kind in _KIND_WORDS:
            if text and word in text:
                return kind
    return None


def _weekdays(text: str) -> list[str]:
    """「月〜金」, 「月・水・金」, 「月火水」, 「平日」 → weekday ids (in week order)."""
    folded = _fold(text).replace("曜日", "").replace("曜", "")
    if not folded:
        return []
    days: set[int] = set()
    if "平日" in folded:
        days.update(range(5))
    for start, end in re.findall(rf"([{_DAYS}])\s*[〜~\-ー－―から]+\s*([{_DAYS}])", folded):
        a, b = _DAYS.index(start), _DAYS.index(end)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    days.update(_DAYS.index(c) for c in re.findall(f"[{_DAYS}]", folded))
    return [WEEKDAY_IDS[d] for d in sorted(days)]


def _time(value: Any) -> str | None:
    text = _fold(value)
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,2})[:時](\d{2})?(?::\d{2})?分?", text)
    if not match:
        raise ValueError
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if not (0 <= hour <= 24 and 0 <= minute < 60):
        raise ValueError
    return f"{hour:02d}:{minute:02d}"


def _cost(value: str) -> int | None:
    text = _fold(value).replace(",", "")
    if not text:
        return None
    if text in {"無料", "無償", "0", "0円", "なし"}:
        return 0
    match = re.fullmatch(r"(\d+)\s*円?", text)
    return int(match.group(1)) if match else None


def _yes(value: str) -> bool | None:
    text = _fold(value)
    if text in {"有", "あり", "有り", "○", "〇", "可", "要"}:
        return True
    if text in {"無", "なし", "無し", "×", "不可", "不要"}:
        return False
    return None


def _code6(value: str) -> str | None:
    from resdb.validation import municipality_code6

    digits = re.sub(r"\D", "", _fold(value))
    if len(digits) not in (5, 6):
        return None
    return municipality_code6(digits)


def _listing_id(prefix: str, code: str | None, *parts: str) -> str:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]
    return f"{prefix}-{code or 'x'}-{digest}"


def _notes(remarks: str, *pairs: tuple[str, str]) -> str | None:
    """備考 as written, then labelled facts the listing has no field for (those already in 備考 not repeated)."""
    lines = [remarks] if remarks else []
    lines += [
        f"{label}: {value}"
        for label, value in pairs
        if value and f"{label}: {value}" not in remarks
    ]
    return "\n".join(lines) or None


@dataclass
class Table:
    """A read table: header names (as written) and (row number, cells) pairs."""

    headers: list[str]
    rows: Iterable[tuple[int, list[Any]]]
    positions: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n, name in enumerate(self.headers):
            self.positions.setdefault(_header(name), n)

    def has(self, name: str) -> bool:
        return _header(name) in self.positions

    def cell(self, cells: list[Any], name: str) -> str:
        n = self.positions.get(_header(name))
        if n is None or n >= len(cells) or cells[n] is None:
            return ""
        value = cells[n]
        if isinstance(value, float) and value.is_integer() and name not in {"緯度", "経度"}:
            value = int(value)
        return str(value).strip()


def _row_error(field_label: str, message: str) -> dict[str, Any]:
    """A row that cannot become a listing: the field (Japanese header) and what to write instead."""
    return {"__row_error__": message, "__row_field__": field_label}


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
    for row_no, cells in table.rows:
        if not any(_fold(c) for c in cells if c is not None):
            continue
        get = functools.partial(table.cell, cells)
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


PREFECTURES = (
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
)


def prefecture_name(code: str | None) -> str:
    """都道府県名 from the first two digits of a 全国地方公共団体コード."""
    digits = re.sub(r"\D", "", code or "")[:2]
    return PREFECTURES[int(digits) - 1] if len(digits) == 2 and 1 <= int(digits) <= 47 else ""


def _common(listing: dict[str, Any]) -> dict[str, str]:
    lat, lon = listing.get("lat"), listing.get("lon")
    code = listing.get("municipality_code") or ""
    return {
        CODE: code,
        "都道府県名": prefecture_name(code),
        "市区町村名": listing.get("__municipality_name__") or "",
        "住所": listing.get("address") or "",
        "緯度": "" if lat is None else f"{lat}",
        "経度": "" if lon is None else f"{lon}",
        "URL": listing.get("url") or "",
        "備考": listing.get("notes") or "",
    }


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
    for row_no, cells in table.rows:
        if not any(_fold(c) for c in cells if c is not None):
            continue
        get = functools.partial(table.cell, cells)
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


# --- registry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    name: str
    title: str
    headers: tuple[str, ...]

    def selects(self, listing: dict[str, Any]) -> bool:
        """Whether a listing belongs in this dataset when exporting."""
        if self.name == "event":
            return bool(listing.get("schedule"))
        targets = set(listing.get("targets") or [])
        if self.name == "kaigo":
            return "elderly" in targets
        return listing.get("kind") == "kosodate" or bool(targets & {"children", "parents"})


FORMATS: dict[str, Format] = {
    "event": Format("event", "イベント一覧", EVENT_HEADERS),
    "kaigo": Format("kaigo", "介護サービス事業所一覧", KAIGO_HEADERS),
    "kosodate": Format("kosodate", "子育て施設一覧", KOSODATE_HEADERS),
}


def detect(headers: list[str]) -> str | None:
    """Which municipal dataset a header row belongs to (None: the generic listing headers)."""
    names = {_header(h) for h in headers}
    if "イベント名" in names:
        return "event"
    if names & {"実施サービス", "事業所番号", "法人の名称"} and "名称" in names:
        return "kaigo"
    if names & {"受入年齢", "収容定員", "一時預かりの有無"} and "名称" in names:
        return "kosodate"
    return None


def read_table(
    fmt: str,
    headers: list[str],
    rows: Iterable[tuple[int, list[Any]]],
    *,
    default_kind: str | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    table = Table(list(headers), rows)
    if fmt == "event":
        return read_events(table, default_kind=default_kind)
    return read_facilities(table, fmt, default_kind=default_kind)


def rows_for(
    fmt: str, listings: Iterable[dict[str, Any]], *, today: date | None = None
) -> Iterator[list[str]]:
    chosen = [x for x in listings if FORMATS[fmt].selects(x)]
    if fmt == "event":
        return write_events(chosen, today=today)
    return write_kaigo(chosen) if fmt == "kaigo" else write_kosodate(chosen)


def export_text(
    fmt: str,
    listings: Iterable[dict[str, Any]],
    *,
    today: date | None = None,
    municipality_names: dict[str, str] | None = None,
) -> str:
    """The dataset as CSV text (CRLF; cells that look like formulas neutralised); `municipality_names`
    (6-digit code → 「射水市」) fills 市区町村名."""
    from resdb.exchange import safe_cell

    if municipality_names:
        listings = (
            {
                **x,
                "__municipality_name__": municipality_names.get(
                    x.get("municipality_code") or "", ""
                ),
            }
            for x in listings
        )

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FORMATS[fmt].headers)
    for row in rows_for(fmt, listings, today=today):
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


class EncodeProblem(ValueError):
    """A character the chosen encoding (Shift_JIS) cannot hold; the message names it."""


def encode(text: str, encoding: str) -> bytes:
    """UTF-8 with BOM ("utf-8-sig") or Shift_JIS ("cp932"); a character Shift_JIS lacks is named, not dropped."""
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise EncodeProblem(
            f"{line}行目の文字「{exc.object[exc.start : exc.end]}」は Shift_JIS で書けません。"
            "UTF-8（BOM付き）で書き出してください"
        ) from None


def template_text(fmt: str) -> str:
    """An empty file with the header row (a downloadable template)."""
    return export_text(fmt, [])
