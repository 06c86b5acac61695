"""Input → validated listing: every problem named by row and field in Japanese, nothing coerced silently."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from resdb.domain import schedule as schedule_mod
from resdb.domain.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAY_IDS, kind_id, target_id
from resdb.fields import (
    AGE_RANGE,
    LISTING_FIELDS,
    MAX_LIST_ITEM,
    MAX_LIST_ITEMS,
    FieldSpec,
    bad_text,
    first_bad_text,
    names_of,
    spec,
)

JAPAN_LAT = (spec("lat").minimum, spec("lat").maximum)
JAPAN_LON = (spec("lon").minimum, spec("lon").maximum)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_TRUE = {"true", "1", "yes", "y", "t", "○", "〇", "有", "あり", "はい", "可"}
_FALSE = {"false", "0", "no", "n", "f", "×", "無", "なし", "いいえ", "不可", "-"}
LIST_SPLIT = re.compile(r"[;；、,，/／|｜\n]+")

# Fields the listing carries, by type, from the one declaration (resdb.fields).
_SPECIAL = {"id", "kind", "municipality_code", "group_size", "status", "url"}
TEXT_FIELDS = tuple(n for n in (*names_of("str"), *names_of("text")) if n not in _SPECIAL - {"url"})
LIST_FIELDS = names_of("list")
INT_FIELDS = tuple(n for n in names_of("int") if n != "version")
BOOL_FIELDS = names_of("bool")
FLOAT_FIELDS = names_of("float")
KNOWN_FIELDS = {s.name for s in LISTING_FIELDS if s.writable} | {"version"}
MAX_LENGTH = {s.name: s.max_length for s in LISTING_FIELDS if s.max_length}


def _branch(name: str) -> str:
    """Which rule of `validate_listing` checks a field (the first that claims it), decided once."""
    for branch, names in (
        ("text", TEXT_FIELDS),
        ("list", LIST_FIELDS),
        ("int", INT_FIELDS),
        ("bool", BOOL_FIELDS),
        ("float", FLOAT_FIELDS),
    ):
        if name in names:
            return branch
    if name in {"verified_at", "source_read_at"}:
        return "date"
    return name  # a field with its own rule (id, kind, schedule, …)


_SCALARS = (int, float, type(None))  # values with no text inside (bool is an int)


@dataclass(frozen=True)
class Problem:
    """One reason a record is refused: where (row, field) and why (Japanese)."""

    field: str
    message: str
    row: int | None = None
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message, "value": self.value}

    def __str__(self) -> str:
        where = f"{self.row}行目 " if self.row is not None else ""
        return f"{where}{self.field}: {self.message}"


class ValidationFailed(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("はい/いいえ（true/false）で指定してください")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("整数で指定してください")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip().replace(",", "").replace("円", "").replace("人", "").replace("名", "")
    if text in {"無料", "無償"}:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError("整数で指定してください") from None


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("数値で指定してください")
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    except (ValueError, OverflowError):
        raise ValueError("数値で指定してください") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("数値で指定してください")
    return number


def parse_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        if any(isinstance(v, list | tuple | dict) for v in value):
            raise ValueError("文字列の一覧で指定してください")
        return [str(v).strip() for v in value if not _blank(v)]
    if isinstance(value, dict):
        raise ValueError("文字列の一覧で指定してください")
    return [part.strip() for part in LIST_SPLIT.split(str(value)) if part.strip()]


def parse_coordinate(value: Any, key: str) -> float:
    """A decimal degree (36.7217); anything else is refused with what to write instead."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    try:
        return float(text)
    except ValueError:
        example = "36.7217" if key == "lat" else "137.1107"
        label = "緯度" if key == "lat" else "経度"
        raise ValueError(
            f"{label}は 10進数の度で書いてください（例: {example}）。「北緯36度」や度分秒の書き方は読めません"
        ) from None


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = (
        str(value).strip().replace("/", "-").replace("年", "-").replace("月", "-").replace("日", "")
    )
    try:
        return date.fromisoformat("-".join(part.zfill(2) for part in text.split("-")))
    except ValueError:
        raise ValueError("日付は YYYY-MM-DD で指定してください") from None


def municipality_code6(code: str) -> str:
    """The 6-digit 全国地方公共団体コード (with check digit) from a 5- or 6-digit code."""
    digits = re.sub(r"\D", "", str(code))
    if len(digits) == 6:
        return digits
    if len(digits) != 5:
        raise ValueError("5桁または6桁の地方公共団体コードで指定してください")
    total = sum(int(d) * w for d, w in zip(digits, (6, 5, 4, 3, 2), strict=True))
    check = (11 - total % 11) % 10 if total % 11 else 1
    return digits + str(check)


# Each rule stores one field's clean value in `clean` or raises ValueError with the Japanese message
# (a rule that stores and then raises leaves the value, as the one chain of rules did).
Rule = Callable[[dict[str, Any], str, Any, FieldSpec], None]
_HTTP = re.compile(r"^https?://", re.IGNORECASE)


def _text_rule(clean: dict[str, Any], key: str, value: Any, field_spec: FieldSpec) -> None:
    if value.__class__ is str:  # the common case: what _blank and str().strip() make of it
        text = value.strip() or None
    else:
        if isinstance(value, list | dict | bool):
            raise ValueError("文字列で指定してください")
        text = None if _blank(value) else str(value).strip()
    if key in {"url", "source_url"} and text and not _HTTP.match(text):
        raise ValueError("http:// または https:// で始まる URL にしてください")
    if text is not None and len(text) > (field_spec.max_length or 0):
        raise ValueError(field_spec.bound_message())
    clean[key] = text


def _list_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    items = [] if _blank(value) else parse_list(value)
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"{MAX_LIST_ITEMS}個以内にしてください")
    if any(len(item) > MAX_LIST_ITEM for item in items):
        raise ValueError(f"ひとつ{MAX_LIST_ITEM}文字以内にしてください")
    clean[key] = items


def _int_rule(clean: dict[str, Any], key: str, value: Any, field_spec: FieldSpec) -> None:
    number = None if _blank(value) else parse_int(value)
    if number is not None and not (field_spec.minimum or 0) <= number <= (field_spec.maximum or 0):
        raise ValueError(field_spec.bound_message())
    clean[key] = number


def _bool_rule(clean: dict[str, Any], key: str, value: Any, field_spec: FieldSpec) -> None:
    flag = None if _blank(value) else parse_bool(value)
    if flag is not None or field_spec.nullable:
        clean[key] = (
            flag  # a blank cell of a non-null field keeps the default (true / false as declared)
        )


def _float_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    clean[key] = None if _blank(value) else parse_coordinate(value, key)


def _id_rule(clean: dict[str, Any], _key: str, value: Any, _spec: FieldSpec) -> None:
    if not _blank(value):
        text = str(value).strip()
        if not ID_PATTERN.match(text):
            raise ValueError("英数字と - _ . だけで100文字以内にしてください")
        clean["id"] = text


def _kind_rule(clean: dict[str, Any], _key: str, value: Any, _spec: FieldSpec) -> None:
    if _blank(value):
        raise ValueError("種別は必須です")
    kind = kind_id(str(value))
    if kind is None:
        raise ValueError(
            "不明な種別です。" + "・".join(KINDS.values()) + " のどれかを書いてください"
        )
    clean["kind"] = kind


def _municipality_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    clean[key] = None if _blank(value) else municipality_code6(str(value))


def _schedule_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    clean[key] = [] if _blank(value) else parse_schedule(value)
    if len(clean[key]) > MAX_LIST_ITEMS:
        raise ValueError(f"日程は{MAX_LIST_ITEMS}件以内にしてください")


def _group_size_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    if _blank(value):
        clean[key] = None
        return
    given = str(value).strip()
    size = next((k for k, label in GROUP_SIZES.items() if given in (k, label)), None)
    if size is None:
        raise ValueError("small / medium / large（少人数・中規模・大人数）で指定してください")
    clean[key] = size


def _eligibility_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    clean[key] = _eligibility(value)


def _service_area_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    clean[key] = _service_area(value)


def _date_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    clean[key] = None if _blank(value) else parse_date(value)
    if clean[key] and clean[key] > date.today():
        raise ValueError("未来の日付です")


def _status_rule(clean: dict[str, Any], key: str, value: Any, _spec: FieldSpec) -> None:
    status = str(value).strip() or "published"
    if status not in {"published", "draft"}:
        raise ValueError("published または draft で指定してください")
    clean[key] = status


def _version_rule(clean: dict[str, Any], key: str, value: Any, field_spec: FieldSpec) -> None:
    clean[key] = None if _blank(value) else parse_int(value)
    if clean[key] is not None and not 0 <= clean[key] <= (field_spec.maximum or 0):
        raise ValueError(field_spec.bound_message())


def _ignore_rule(_clean: dict[str, Any], _key: str, _value: Any, _spec: FieldSpec) -> None:
    """A known field no rule claims: left out of the clean listing."""


_BRANCH_RULES: dict[str, Rule] = {
    "text": _text_rule,
    "list": _list_rule,
    "int": _int_rule,
    "bool": _bool_rule,
    "float": _float_rule,
    "date": _date_rule,
    "id": _id_rule,
    "kind": _kind_rule,
    "municipality_code": _municipality_rule,
    "schedule": _schedule_rule,
    "group_size": _group_size_rule,
    "eligibility": _eligibility_rule,
    "service_area": _service_area_rule,
    "status": _status_rule,
    "version": _version_rule,
}
# Field → (its declaration, its rule, whether an empty value is refused outright): decided once from
# the field declaration, looked up once per value.
_RULES: dict[str, tuple[FieldSpec, Rule, bool]] = {
    name: (
        spec(name),
        _BRANCH_RULES.get(_branch(name), _ignore_rule),
        not spec(name).nullable and spec(name).type == "bool",
    )
    for name in KNOWN_FIELDS
}


def validate_listing(
    raw: dict[str, Any], row: int | None = None, *, partial: bool = False
) -> tuple[dict[str, Any], list[Problem]]:
    """Clean one listing record. Returns (clean fields, problems); clean holds only the fields given."""
    problems: list[Problem] = []
    clean: dict[str, Any] = {}

    def bad(field_name: str, message: str, value: Any = None) -> None:
        problems.append(
            Problem(field_name, message, row, None if value is None else str(value)[:100])
        )

    for key, value in raw.items():
        declared = _RULES.get(key)
        if declared is None:
            continue
        field_spec, rule, refuses_none = declared
        if isinstance(value, str):  # the common case, as first_bad_text checks a string
            why = None if value.isascii() and "\x00" not in value else bad_text(value)
            if why is not None:
                bad(key, why)
                continue
        elif not isinstance(value, _SCALARS):
            found = first_bad_text(value)
            if found is not None:
                bad(key, found[1])
                continue
        if value is None and refuses_none:
            bad(key, "空にはできません（はい/いいえ（true/false）で指定してください）")
            continue
        try:
            rule(clean, key, value, field_spec)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            message = str(exc)
            # Never show Python's own wording (「could not convert …」): only our Japanese messages pass.
            bad(
                key,
                message
                if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", message)
                else "この値は読み取れません。項目の説明にある書き方で書いてください",
                value,
            )

    if "targets" in clean:
        resolved = []
        for target in clean["targets"]:
            target_key = target_id(target)
            if target_key is None:
                bad(
                    "targets",
                    f"不明な対象です: {target}。"
                    + "・".join(TARGETS.values())
                    + " から選んで書いてください",
                    target,
                )
            elif target_key not in resolved:
                resolved.append(target_key)
        clean["targets"] = resolved
    for coordinate, (low, high) in (("lat", JAPAN_LAT), ("lon", JAPAN_LON)):
        number = clean.get(coordinate)
        if number is not None and not low <= number <= high:
            bad(coordinate, f"日本の範囲外です（{low}〜{high}）", number)
    if ("lat" in clean) != ("lon" in clean) or (clean.get("lat") is None) != (
        clean.get("lon") is None
    ):
        if not any(p.field in {"lat", "lon"} for p in problems) and not partial:
            bad("lat" if clean.get("lat") is None else "lon", "緯度と経度は両方指定してください")
    if not partial:
        if _blank(clean.get("name")) and not any(p.field == "name" for p in problems):
            bad("name", "名称は必須です")
        if "kind" not in clean and not any(p.field == "kind" for p in problems):
            bad("kind", "種別は必須です")
        has_point = clean.get("lat") is not None and clean.get("lon") is not None
        if not has_point and not any(clean.get(k) for k in ("address", "district", "service_area")):
            if not any(p.field in {"lat", "lon"} for p in problems):
                bad(
                    "address",
                    "場所がありません（緯度・経度、住所、地区、担当地区のいずれかが必要です）",
                )
    return clean, problems


def _eligibility(value: Any) -> dict[str, Any]:
    if _blank(value):
        return {}
    if not isinstance(value, dict):
        raise ValueError("eligibility はオブジェクトで指定してください")
    result: dict[str, Any] = {}
    for key in ("min_age", "max_age"):
        if not _blank(value.get(key)):
            age = parse_int(value[key])
            if not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
                raise ValueError(f"{key} は{AGE_RANGE[0]}〜{AGE_RANGE[1]}で指定してください")
            result[key] = age
    if (
        result.get("min_age") is not None
        and result.get("max_age") is not None
        and result["min_age"] > result["max_age"]
    ):
        raise ValueError("min_age が max_age より大きくなっています")
    if not _blank(value.get("residents_only")):
        result["residents_only"] = parse_bool(value["residents_only"])
    return result


def _service_area(value: Any) -> dict[str, Any] | None:
    if _blank(value):
        return None
    if isinstance(value, str):
        return {"districts": parse_list(value)}
    if not isinstance(value, dict):
        raise ValueError(
            "service_area は districts または geometry を持つオブジェクトで指定してください"
        )
    area: dict[str, Any] = {}
    if value.get("districts"):
        area["districts"] = parse_list(value["districts"])
        if len(area["districts"]) > 500 or any(len(d) > 100 for d in area["districts"]):
            raise ValueError("担当地区は500地区まで、地区名は100文字以内にしてください")
    if value.get("geometry"):
        geometry = value["geometry"]
        if not isinstance(geometry, dict) or geometry.get("type") not in {
            "Polygon",
            "MultiPolygon",
        }:
            raise ValueError("geometry は GeoJSON の Polygon / MultiPolygon で指定してください")
        try:
            from shapely.geometry import shape

            if shape(geometry).is_empty:
                raise ValueError
        except Exception:  # shapely raises many kinds for malformed coordinates
            raise ValueError(
                "geometry の座標が GeoJSON の Polygon / MultiPolygon として正しくありません"
            ) from None
        area["geometry"] = geometry
    return area or None


_DAY_CHARS = "月火水木金土日"
_SCHEDULE_TEXT = re.compile(
    r"(?:毎週|毎月)?\s*(?:第\s*(?P<weeks>[1-5](?:\s*[・,、]\s*(?:第\s*)?[1-5])*))?\s*"
    r"(?P<days>[月火水木金土日](?:\s*[・,、]\s*[月火水木金土日])*)\s*(?:曜日|曜)?\s*"
    r"(?P<start>\d{1,2}:\d{2})\s*[〜~\-ー－―]\s*(?P<end>\d{1,2}:\d{2})"
)
_SCHEDULE_ASCII = re.compile(
    r"(?P<day>mon|tue|wed|thu|fri|sat|sun)(?:#(?P<weeks>[1-5](?:,[1-5])*))?\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
)


def schedule_from_text(text: str) -> list[dict[str, Any]]:
    """Entries from 「毎月第2・第4土曜 13:30〜15:00」, 「毎週火・木 10:00-12:00」 or "wed#1,3 13:30-15:30"."""
    folded = unicodedata.normalize("NFKC", text)
    entries: list[dict[str, Any]] = []
    for match in _SCHEDULE_TEXT.finditer(folded):
        weeks = [int(w) for w in re.findall(r"[1-5]", match.group("weeks") or "")]
        for char in re.findall(f"[{_DAY_CHARS}]", match.group("days")):
            entry: dict[str, Any] = {
                "weekday": WEEKDAY_IDS[_DAY_CHARS.index(char)],
                "start": match.group("start").zfill(5),
                "end": match.group("end").zfill(5),
            }
            if weeks:
                entry["weeks"] = weeks
            entries.append(entry)
    for match in _SCHEDULE_ASCII.finditer(folded.lower()):
        entry = {
            "weekday": match.group("day"),
            "start": match.group("start").zfill(5),
            "end": match.group("end").zfill(5),
        }
        if match.group("weeks"):
            entry["weeks"] = [int(w) for w in match.group("weeks").split(",")]
        entries.append(entry)
    if not entries:
        raise ValueError("日程を読み取れません（例: 毎月第2・第4土曜 13:30〜15:00、または JSON）")
    return entries


def parse_schedule(value: Any) -> list[dict[str, Any]]:
    """A schedule from a list of entries, JSON text, or Japanese text; validated and normalized."""
    if isinstance(value, str):
        # Long files repeat the same few schedule texts: parse each once (copies, since callers may change them).
        return [
            dict(entry, **({"weeks": list(entry["weeks"])} if "weeks" in entry else {}))
            for entry in _parse_schedule_text(value)
        ]
    return _parse_schedule_value(value)


@lru_cache(maxsize=4096)
def _parse_schedule_text(value: str) -> tuple[dict[str, Any], ...]:
    return tuple(_parse_schedule_value(value))


def _parse_schedule_value(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    "日程の JSON を読めません。「毎月第2・第4土曜 13:30〜15:00」のように日本語で書くこともできます"
                ) from None
        else:
            value = schedule_from_text(text)
    return schedule_mod.validate(value)
