"""Cells of the 自治体標準オープンデータセット tables: headers, days, times, costs, codes, 都道府県 names.

Shared by every format family (`events`, `facilities`); a row that cannot become a listing carries
a Japanese `__row_error__` made by `_row_error`.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from resdb.domain.vocab import WEEKDAYS

_DAYS = "月火水木金土日"
WEEKDAY_IDS = tuple(WEEKDAYS)
CODE = "都道府県コード又は市区町村コード"


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

    def filled_rows(self) -> Iterator[tuple[int, list[Any], Callable[[str], str]]]:
        """(row number, cells, a reader of one named cell) for each row with any cell written."""
        for row_no, cells in self.rows:
            if any(_fold(c) for c in cells if c is not None):
                yield row_no, cells, functools.partial(self.cell, cells)


def _row_error(field_label: str, message: str) -> dict[str, Any]:
    """A row that cannot become a listing: the field (Japanese header) and what to write instead."""
    return {"__row_error__": message, "__row_field__": field_label}


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
