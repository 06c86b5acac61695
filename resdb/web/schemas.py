"""Pydantic models describing the API's JSON (used for the generated OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from resdb.vocab import GROUP_SIZES, KINDS, TARGETS, WEEKDAY_IDS


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


class ListingFields(BaseModel):
    """The writable fields of a listing (contract keys plus this product's extensions)."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(None, max_length=200, description="名称")
    name_kana: str | None = Field(None, description="名称_カナ")
    kind: str | None = Field(None, json_schema_extra={"enum": list(KINDS)}, description="種別: " + "、".join(f"{k}={v}" for k, v in KINDS.items()))
    description: str | None = None
    municipality_code: str | None = Field(None, description="地方公共団体コード（6桁）")
    address: str | None = None
    lat: float | None = Field(None, ge=20, le=46)
    lon: float | None = Field(None, ge=122, le=154)
    district: str | None = Field(None, description="地区・町字")
    venue: str | None = Field(None, description="会場")
    operator: str | None = Field(None, description="運営主体")
    phone: str | None = None
    email: str | None = None
    url: str | None = None
    targets: list[str] | None = Field(None, json_schema_extra={"items": {"enum": list(TARGETS)}}, description="対象")
    activities: list[str] | None = None
    schedule: list[ScheduleEntry] | None = None
    cost_yen: int | None = Field(None, ge=0, description="費用（円）。0 は無料")
    capacity: int | None = Field(None, ge=0, description="参加支援で紹介できる空き。null は制限なし・不明")
    accepts_referrals: bool | None = None
    group_size: str | None = Field(None, json_schema_extra={"enum": list(GROUP_SIZES)})
    barrier_free: bool | None = None
    pickup: bool | None = None
    reservation_required: bool | None = None
    holidays_closed: bool | None = Field(None, description="祝日は休み")
    eligibility: Eligibility | None = None
    service_area: ServiceArea | None = None
    verified_at: str | None = Field(None, description="最終確認日 YYYY-MM-DD")
    source: str | None = Field(None, description="出典（計画のファイル名・取込ファイル名）")
    source_detail: str | None = None
    is_sample: bool | None = Field(None, description="架空のサンプル（画面には「サンプル（架空）」と表示）")
    notes: str | None = None


class ListingCreate(ListingFields):
    """A new listing: name, kind and a location (lat+lon, or an address or district the system can place)."""

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$", description="省略すると自動で付番")
    name: str = Field(..., max_length=200, description="名称")  # type: ignore[assignment]
    kind: str = Field(..., json_schema_extra={"enum": list(KINDS)}, description="種別")  # type: ignore[assignment]


class ListingUpdate(ListingFields):
    """A partial update; `version` (or the If-Match header) guards against overwriting someone else's edit."""

    version: int | None = Field(None, description="読み込んだときの版。古ければ 412")


class Listing(ListingFields):
    """A stored listing as the API returns it."""

    id: str
    name: str  # type: ignore[assignment]
    kind: str  # type: ignore[assignment]
    status: str | None = None
    version: int = Field(..., description="版（ETag は \"v<version>\"）")
    updated_at: str | None = None
    location_precision: str | None = None
    distance_km: float | None = Field(None, description="lat/lon を指定した検索での距離（km）")


class SearchResult(BaseModel):
    items: list[Listing]
    total: int


class Problem(BaseModel):
    field: str | None = None
    message: str
    row: int | None = None
    value: Any = None


class ErrorDetail(BaseModel):
    code: str = Field(..., description="bad_parameter, not_found, unauthorized, forbidden, precondition_failed, invalid, rate_limited …")
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
    next: str | None = Field(None, description="次の開催（例: 「次回 12月3日（水）13:30」）。6週間以内に予定がなければ null")
    cost: str | None = Field(None, description="費用（「無料」「100円」）。不明なら null")


class PointGeometry(BaseModel):
    type: str = "Point"
    coordinates: list[float] = Field(..., min_length=2, max_length=2, description="[経度, 緯度]")


class Feature(BaseModel):
    type: str = "Feature"
    id: str
    geometry: PointGeometry | None
    properties: FeatureProperties


class FeatureCollection(BaseModel):
    type: str = "FeatureCollection"
    features: list[Feature]
    total: int = Field(..., description="該当件数")


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
