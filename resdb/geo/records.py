"""DistrictRecord: a named area (municipality, 町字, 地区) with its polygon, and where it came from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

LEVELS = ("municipality", "town", "chiku")

SOURCE_N03 = "国土交通省 国土数値情報 行政区域データ N03 (2022-01-01)"
SOURCE_TOWNS = "Geolonia 住所データ (CC BY 4.0; 位置参照情報に基づく)"
SOURCE_POSTAL = "日本郵便 郵便番号データ"
SOURCE_SHELTERS = "国土地理院 指定緊急避難場所・指定避難所データ"

METHOD_BOUNDARY = "n03_boundary"
METHOD_VORONOI = "voronoi_town_points"
METHOD_NO_POINT = "no_point"
METHOD_CHIKU_UNION = "union_of_member_towns"
METHOD_IMPORTED = "imported_polygons"


@dataclass
class DistrictRecord:
    """A named area (municipality, 町字 or 地区) with its polygon and how the polygon was obtained."""

    municipality_code: str  # 6-digit
    name: str
    kana: str | None
    level: str  # "municipality" | "town" | "chiku"
    geometry: BaseGeometry
    approximate: bool
    method: str
    source: str
    members: list[str] = field(
        default_factory=list
    )  # chiku: its 町字; town: its merged 小字 points
    lat: float | None = None  # representative point (the 町字 point for towns)
    lon: float | None = None

    def geometry_geojson(self) -> str:
        """The geometry as GeoJSON text (WGS84), as the district table stores it."""
        return json.dumps(mapping(self.geometry), ensure_ascii=False, separators=(",", ":"))

    def as_row(self) -> dict[str, object]:
        """The record as plain values matching the columns of resdb.models.District."""
        return {
            "municipality_code": self.municipality_code,
            "name": self.name,
            "kana": self.kana,
            "level": self.level,
            "geometry": self.geometry_geojson(),
            "approximate": self.approximate,
            "method": self.method,
            "source": self.source,
            "members": list(self.members),
            "lat": self.lat,
            "lon": self.lon,
        }


def representative(geometry: BaseGeometry) -> tuple[float | None, float | None]:
    if geometry.is_empty:
        return None, None
    point = geometry.representative_point()
    return point.y, point.x


def polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the polygon parts of an overlay result (drops slivers collapsed to lines/points)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon") or geometry.is_empty:
        return geometry
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if part.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts) if parts else shapely.Polygon()
