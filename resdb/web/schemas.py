"""Pydantic models describing the API's JSON (used for the generated OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from resdb.domain.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAY_IDS
from resdb.fields import LISTING_FIELDS, FieldSpec, spec


def _enum(values: Any, description: str) -> Any:
    return Field(json_schema_extra={"enum": list(values)}, description=description)


class ScheduleEntry(BaseModel):
    """One weekly or monthly session: 毎週水曜 / 毎月第1・第3水曜 13:30〜15:30."""

    weekday: str = _enum(WEEKDAY_IDS, "曜日 (mon … sun)")
    weeks: list[int] | None = Field(None, description="第何週か（1〜5）。省略は毎週")
    start: str = Field(..., pattern=r"^\d{2}:\d{2}$", description="開始 HH:MM (Asia/Tokyo)")
    end: str = Field(..., pattern=r"^\d{2}:\d{2}$", description="終了 HH:MM (Asia/Tokyo)")


class Eligibility(BaseModel):
    min_age: int | None = None
    max_age: int | None = None
    residents_only: bool | None = None


class ServiceArea(BaseModel):
    """担当地区: district names, or a GeoJSON geometry."""

    districts: list[str] | None = None
    geometry: dict[str, Any] | None = None


_SPECIAL_SCHEMA: dict[str, dict[str, Any]] = {
    "kind": {
        "json_schema_extra": {"enum": list(KINDS)},
        "description": "種別: " + "、".join(f"{k}={v}" for k, v in KINDS.items()),
    },
    "group_size": {"json_schema_extra": {"enum": list(GROUP_SIZES)}},
    "targets": {"json_schema_extra": {"items": {"enum": list(TARGETS)}}},
    "municipality_code": {"pattern": r"^\d{5,6}$"},
    "verified_at": {"description": "最終確認日 YYYY-MM-DD"},
    "cost_yen": {"description": "費用（円）。0 は無料"},
    "capacity": {"description": "参加支援で紹介できる空き。null は制限なし・不明"},
    "is_sample": {"description": "架空のサンプル（画面には「サンプル（架空）」と表示）"},
}
_OBJECTS: dict[str, Any] = {"eligibility": Eligibility, "service_area": ServiceArea}


def _annotation(field_spec: FieldSpec) -> Any:
    """The Python type of one declared field as the API accepts it (null = leave out / clear)."""
    base: Any = {
        "str": str,
        "text": str,
        "int": int,
        "float": float,
        "bool": bool,
        "date": str,
        "list": list[str],
        "schedule": list[ScheduleEntry],
    }.get(field_spec.type) or _OBJECTS[field_spec.name]
    return base if not field_spec.nullable and field_spec.type == "bool" else base | None


def _field_info(field_spec: FieldSpec) -> Any:
    """Bounds and the Japanese label of one declared field (from resdb.fields)."""
    options: dict[str, Any] = {"description": field_spec.label}
    if field_spec.max_length and field_spec.type in {"str", "text"}:
        options["max_length"] = field_spec.max_length
    if field_spec.minimum is not None:
        options["ge"] = field_spec.minimum
    if field_spec.maximum is not None:
        options["le"] = field_spec.maximum
    options.update(_SPECIAL_SCHEMA.get(field_spec.name, {}))
    return Field(None, **options)


# The writable fields of a listing (contract keys plus extensions), derived from the one declaration.
_WRITABLE_FIELDS: dict[str, Any] = {
    s.name: (_annotation(s), _field_info(s))
    for s in LISTING_FIELDS
    if s.writable and s.name not in {"id", "status"}
}
ListingFields: type[BaseModel] = create_model(
    "ListingFields",
    __config__=ConfigDict(extra="allow"),
    __doc__="The writable fields of a listing (contract keys plus this product's extensions).",
    **_WRITABLE_FIELDS,
)


class ListingCreate(ListingFields):  # type: ignore[valid-type,misc]
    """A new listing: name, kind and a location (lat+lon, or an address or district the system can place)."""

    id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$", description="省略すると自動で付番"
    )
    name: str = Field(..., max_length=spec("name").max_length, description="名称")
    kind: str = Field(..., json_schema_extra={"enum": list(KINDS)}, description="種別")


class ListingUpdate(ListingFields):  # type: ignore[valid-type,misc]
    """A partial update; `version` (or the If-Match header) guards against overwriting someone else's edit."""

    version: int | None = Field(None, description="読み込んだときの版。古ければ 412")


class Listing(ListingFields):  # type: ignore[valid-type,misc]
    """A stored listing as the API returns it."""

    id: str
    name: str
    kind: str
    status: str | None = None
    version: int = Field(..., description='版（ETag は "v<version>"）')
    updated_at: str | None = None
    distance_km: float | None = Field(None, description="lat/lon を指定した検索での距離（km）")


class SearchResult(BaseModel):
    items: list[Listing]
    total: int
    pending_changes: int = Field(
        0,
        description="この検索にまだ反映されていない確定済みの変更の数（通常 0。大量の取り込みの直後、"
        "索引の作り直しが終わるまでは、作り直し前の索引から答えます）",
    )


class Problem(BaseModel):
    field: str | None = None
    message: str
    row: int | None = None
    value: Any = None


class ErrorDetail(BaseModel):
    code: str = Field(
        ...,
        description="bad_parameter, not_found, unauthorized, forbidden, precondition_failed, invalid, rate_limited …",
    )
    message: str = Field(..., description="日本語の説明")
    problems: list[Problem] = []


class ErrorResponse(BaseModel):
    error: ErrorDetail


class StaleResponse(ErrorResponse):
    current_version: int
    current: Listing


class FeatureProperties(BaseModel):
    id: str
    name: str
    kind: str
    kind_label: str
    is_sample: bool
    next: str | None = Field(
        None,
        description="次の開催（例: 「次回 12月3日（水）13:30」）。6週間以内に予定がなければ null",
    )
    cost: str | None = Field(None, description="費用（「無料」「100円」）。不明なら null")


class ClusterProperties(BaseModel):
    cluster: bool = Field(True, description="格子（cluster）の印")
    count: int = Field(..., description="この格子にある件数")
    samples: int = Field(..., description="そのうちサンプル（架空の例）の件数")
    kinds: dict[str, int] = Field(..., description="種別ごとの件数")
    bbox: list[float] = Field(
        ...,
        min_length=4,
        max_length=4,
        description="格子の範囲 [最小経度, 最小緯度, 最大経度, 最大緯度]",
    )


class PointGeometry(BaseModel):
    type: str = "Point"
    coordinates: list[float] = Field(..., min_length=2, max_length=2, description="[経度, 緯度]")


class Feature(BaseModel):
    type: str = "Feature"
    id: str
    geometry: PointGeometry | None
    properties: FeatureProperties | ClusterProperties


class FeatureCollection(BaseModel):
    type: str = "FeatureCollection"
    features: list[Feature]
    total: int = Field(..., description="該当件数")
    clustered: bool | None = Field(
        None,
        description="zoom を指定したとき: true なら features は格子ごとの件数（1件だけの格子はその地点）",
    )
    level: int | None = Field(None, description="clustered のとき、格子を切ったズーム")


class Town(BaseModel):
    municipality_code: str
    name: str
    kana: str | None = None
    municipality: str | None = None


class AreaLookup(BaseModel):
    items: list[Listing] = Field(..., description="その地点を担当地区に含む相談支援機関など")
    town: Town | None
    point: dict[str, float]
    address: str | None = None


class HistoryEntry(BaseModel):
    version: int
    action: str
    actor: str
    at: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None


class History(BaseModel):
    id: str
    items: list[HistoryEntry]
