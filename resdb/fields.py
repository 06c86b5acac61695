"""The one declaration of a listing's fields: name, type, bounds, Japanese label, CSV headers, public or not.

The table's column lengths (`resdb.models`), validation (`resdb.validation`), the API schema
(`resdb.web.schemas`), the editor's labels and the exchange header maps (`resdb.exchange`) derive from
`LISTING_FIELDS`; `tests/resdb/test_fields.py` holds it against the table and the migrations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Types: str (bounded VARCHAR), text (TEXT, still bounded here), int, float, bool, list (of short strings),
# object (JSON), schedule (JSON list of entries), date.
TYPES = ("str", "text", "int", "float", "bool", "list", "object", "schedule", "date")
# A JSON body or cell nested deeper than this is refused before it is parsed any further.
MAX_JSON_DEPTH = 32
# Longest item of a list field (targets, activities) and most items.
MAX_LIST_ITEM = 100
MAX_LIST_ITEMS = 50


@dataclass(frozen=True)
class FieldSpec:
    """One field of a listing as every layer sees it."""

    name: str
    type: str
    label: str
    max_length: int | None = None  # characters, for str / text (and each list item)
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = (
        True  # False: the column refuses NULL (a default applies when the field is left out)
    )
    headers: tuple[str, ...] = ()  # Japanese CSV headers, the first is the one exports write
    public: bool = True  # in the public JSON shape (API, export, search index)
    writable: bool = True  # set by editors / imports (False: kept by the system)
    contract: bool = False  # a key of the shared contract (the rest are this product's extensions)

    def __post_init__(self) -> None:
        assert self.type in TYPES, self.type
        assert self.type not in {"str"} or self.max_length, (
            f"{self.name}: a str field needs max_length"
        )

    def bound_message(self) -> str:
        if self.type in {"int", "float"}:
            low = _number(self.minimum)
            high = _number(self.maximum)
            return f"{low}〜{high}の範囲で指定してください"
        return f"{self.max_length}文字以内にしてください"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{int(value):,}" if float(value).is_integer() else str(value)


LISTING_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "id", "str", "ID", max_length=100, nullable=False, headers=("ID", "id"), contract=True
    ),
    FieldSpec(
        "name", "str", "名称", max_length=200, nullable=False, headers=("名称",), contract=True
    ),
    FieldSpec(
        "name_kana",
        "str",
        "名称（かな）",
        max_length=200,
        headers=("名称_カナ", "名称カナ", "ふりがな"),
        contract=True,
    ),
    FieldSpec(
        "kind", "str", "種別", max_length=20, nullable=False, headers=("種別",), contract=True
    ),
    FieldSpec(
        "description", "text", "説明", max_length=5000, headers=("説明", "概要"), contract=True
    ),
    FieldSpec(
        "municipality_code",
        "str",
        "地方公共団体コード",
        max_length=6,
        headers=("地方公共団体コード",),
        contract=True,
    ),
    FieldSpec("address", "str", "住所", max_length=300, headers=("住所", "所在地"), contract=True),
    FieldSpec("lat", "float", "緯度", minimum=20.0, maximum=46.0, headers=("緯度",), contract=True),
    FieldSpec(
        "lon", "float", "経度", minimum=122.0, maximum=154.0, headers=("経度",), contract=True
    ),
    FieldSpec("operator", "str", "運営主体", max_length=200, headers=("運営主体",), contract=True),
    FieldSpec("phone", "str", "電話番号", max_length=50, headers=("電話番号",), contract=True),
    FieldSpec("url", "str", "URL", max_length=500, headers=("URL",), contract=True),
    FieldSpec("targets", "list", "対象", nullable=False, headers=("対象",), contract=True),
    FieldSpec(
        "activities", "list", "活動", nullable=False, headers=("活動", "活動内容"), contract=True
    ),
    FieldSpec(
        "schedule",
        "schedule",
        "日程",
        nullable=False,
        headers=("日程", "開催日時", "スケジュール"),
        contract=True,
    ),
    FieldSpec(
        "cost_yen",
        "int",
        "費用（円）",
        minimum=0,
        maximum=1_000_000,
        headers=("費用",),
        contract=True,
    ),
    FieldSpec(
        "capacity",
        "int",
        "受け入れ可能人数",
        minimum=0,
        maximum=100_000,
        headers=("定員",),
        contract=True,
    ),
    FieldSpec(
        "accepts_referrals",
        "bool",
        "紹介を受け入れる",
        nullable=False,
        headers=("紹介受入",),
        contract=True,
    ),
    FieldSpec(
        "group_size",
        "str",
        "集まりの規模",
        max_length=10,
        headers=("集団の規模", "規模"),
        contract=True,
    ),
    FieldSpec("barrier_free", "bool", "バリアフリー", headers=("バリアフリー",), contract=True),
    FieldSpec("pickup", "bool", "送迎", headers=("送迎",), contract=True),
    FieldSpec("eligibility", "object", "参加条件", nullable=False, contract=True),
    FieldSpec("service_area", "object", "担当地区", headers=("担当地区",), contract=True),
    FieldSpec("verified_at", "date", "確認日", headers=("最終確認日", "確認日"), contract=True),
    FieldSpec("source", "str", "出典", max_length=300, headers=("出典",), contract=True),
    FieldSpec("district", "str", "地区", max_length=100, headers=("地区", "町字")),
    FieldSpec("venue", "str", "会場", max_length=200, headers=("会場",)),
    FieldSpec("location_precision", "str", "位置の精度", max_length=20),
    FieldSpec("email", "str", "メール", max_length=200, headers=("メールアドレス",)),
    FieldSpec("reservation_required", "bool", "予約", headers=("要予約", "予約")),
    FieldSpec("holidays_closed", "bool", "祝日は休み", nullable=False, headers=("祝日休み",)),
    FieldSpec("source_detail", "str", "出典の詳細", max_length=500, headers=("出典詳細",)),
    FieldSpec("source_url", "str", "出典のURL", max_length=500, headers=("出典URL", "出典のURL")),
    FieldSpec("source_read_at", "date", "出典を読んだ日", headers=("出典閲覧日",)),
    FieldSpec(
        "location_private", "bool", "個人宅（公開は町字まで）", nullable=False, headers=("個人宅",)
    ),
    FieldSpec("is_sample", "bool", "サンプル", nullable=False, headers=("サンプル",)),
    FieldSpec("notes", "text", "備考", max_length=5000, headers=("備考",)),
    FieldSpec("status", "str", "公開状態", max_length=12, nullable=False, headers=("状態",)),
    FieldSpec("version", "int", "版", minimum=1, maximum=2**31 - 1, nullable=False, writable=False),
    FieldSpec("updated_at", "date", "更新日時", nullable=False, writable=False),
)
# Eligibility is one JSON column, flattened into three spreadsheet columns.
ELIGIBILITY_HEADERS: dict[str, tuple[str, ...]] = {
    "min_age": ("対象年齢下限",),
    "max_age": ("対象年齢上限",),
    "residents_only": ("市内在住者のみ",),
}
AGE_RANGE = (0, 120)

BY_NAME: dict[str, FieldSpec] = {spec.name: spec for spec in LISTING_FIELDS}
PUBLIC_FIELDS: tuple[str, ...] = tuple(s.name for s in LISTING_FIELDS if s.public)
CONTRACT_FIELDS: tuple[str, ...] = tuple(s.name for s in LISTING_FIELDS if s.contract)
EXTENSION_FIELDS: tuple[str, ...] = tuple(
    s.name for s in LISTING_FIELDS if s.public and not s.contract
)
# What files carry in and out (not the system's version / updated_at, nor status).
EXCHANGE_FIELDS: tuple[str, ...] = tuple(
    s.name for s in LISTING_FIELDS if s.writable and s.name != "status"
)


def spec(name: str) -> FieldSpec:
    return BY_NAME[name]


def max_length(name: str) -> int | None:
    return BY_NAME[name].max_length


def names_of(kind: str) -> tuple[str, ...]:
    return tuple(s.name for s in LISTING_FIELDS if s.type == kind)


def labels() -> dict[str, str]:
    """Field → Japanese label (for forms, problems and the history diff)."""
    return {s.name: s.label for s in LISTING_FIELDS}


def label(name: str) -> str:
    top = name.split(".")[0].split("[")[0]
    return BY_NAME[top].label if top in BY_NAME else name


def csv_headers() -> dict[str, str]:
    """Japanese CSV header → field (every alias), plus the flattened eligibility columns."""
    out: dict[str, str] = {}
    for field_spec in LISTING_FIELDS:
        for header in field_spec.headers:
            out[header] = field_spec.name
    for key, headers in ELIGIBILITY_HEADERS.items():
        for header in headers:
            out[header] = key
    return out


def bad_text(value: Any) -> str | None:
    """Why a text cannot be stored on every backend (NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return "使えない文字（NUL）が含まれています"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "使えない文字（不正な Unicode）が含まれています"
    return None


def first_bad_text(value: Any, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(where, why) of the first string inside `value` (keys too) that no backend can store, or None."""
    if depth > MAX_JSON_DEPTH:
        return path, f"入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）"
    if isinstance(value, str):
        why = bad_text(value)
        return (path, why) if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (why := bad_text(key)):
                return (path or "(本文)", why)
            found = first_bad_text(item, where, depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_bad_text(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
    return None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit` (strings skipped, nothing parsed)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub(b"", data)):
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
