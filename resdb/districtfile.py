"""Reading district polygon files (GeoJSON, shapefile) safely: each feature that cannot become an area is
named by its number in Japanese, and the good ones are kept for an import the user asked for."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from resdb import geo
from resdb.intake import FileProblem
from resdb.validation import Problem

_WGS84 = {
    "EPSG:4326",
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
}


@dataclass
class DistrictFile:
    """What a district file gave: areas ready to store and the features left out (with why)."""

    records: list[geo.DistrictRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    features: int = 0


def _bad(number: int, message: str, value: Any = None) -> Problem:
    return Problem(
        "feature",
        f"{number}番目の地物: {message}",
        number,
        None if value is None else str(value)[:100],
    )


def _area(number: int, geometry: BaseGeometry) -> BaseGeometry | Problem:
    """The polygonal area of one feature, or the problem that keeps it from being a district."""
    kind = geometry.geom_type
    if kind not in {"Polygon", "MultiPolygon", "GeometryCollection"}:
        return _bad(
            number,
            f"{kind}（点・線）は区域になりません。Polygon か MultiPolygon の形にしてください",
            kind,
        )
    if geometry.is_empty:
        return _bad(number, "形が空です（座標がありません）")
    minx, miny, maxx, maxy = geometry.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or not (
        122 <= minx <= maxx <= 154 and 20 <= miny <= maxy <= 46
    ):
        return _bad(
            number,
            "座標が日本の範囲（経度122〜154、緯度20〜46）の外です。"
            "緯度経度（世界測地系 WGS84）で保存してください",
            f"{minx:.3f},{miny:.3f}",
        )
    area = geo.polygonal(shapely.make_valid(geometry))
    if area.is_empty:
        return _bad(number, "形を区域として読めません（面積がありません）")
    return area


def _features_geojson(path: Path) -> list[tuple[dict[str, Any], Any]]:
    try:
        payload = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise FileProblem(Problem("file", "GeoJSON は UTF-8 で保存してください")) from None
    except json.JSONDecodeError as exc:
        raise FileProblem(
            Problem(
                "file",
                f"GeoJSON として読めません（{exc.lineno}行目 {exc.colno}文字目）。"
                '括弧 {} [] と , " の対応を確かめてください',
                exc.lineno,
            )
        ) from None
    if (
        not isinstance(payload, dict)
        or payload.get("type") != "FeatureCollection"
        or not isinstance(payload.get("features"), list)
    ):
        raise FileProblem(
            Problem(
                "file",
                'GeoJSON の FeatureCollection（"type": "FeatureCollection" と "features": [...]）にしてください',
            )
        )
    crs = ((payload.get("crs") or {}).get("properties") or {}).get("name")
    if crs and crs not in _WGS84:
        raise FileProblem(
            Problem(
                "file", f"座標系 {crs} は読めません。緯度経度（WGS84, EPSG:4326）で保存してください"
            )
        )
    found: list[tuple[dict[str, Any], Any]] = []
    for feature in payload["features"]:
        if not isinstance(feature, dict):
            found.append(({}, "not-a-feature"))
            continue
        found.append((feature.get("properties") or {}, feature.get("geometry")))
    return found


def _features_shapefile(path: Path, encoding: str | None) -> list[tuple[dict[str, Any], Any]]:
    import geopandas as gpd

    try:
        frame = gpd.read_file(path, encoding=encoding) if encoding else gpd.read_file(path)
    except Exception:  # fiona/pyogrio raise many kinds
        raise FileProblem(
            Problem(
                "file",
                "地図のファイルとして読めません。GeoJSON（.geojson）か、"
                ".shp・.shx・.dbf・.prj のそろったシェープファイルにしてください",
            )
        ) from None
    if frame.crs is None:
        frame = frame.set_crs(4326)
    elif frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    rows: list[tuple[dict[str, Any], Any]] = []
    for _, row in frame.iterrows():
        properties = {
            str(k): (None if _missing(v) else v) for k, v in row.items() if k != "geometry"
        }
        rows.append((properties, row.geometry))
    return rows


def _missing(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def read_district_file(
    path: str | Path,
    municipality_code: str,
    name_field: str,
    *,
    level: str = "town",
    kana_field: str | None = None,
    source: str | None = None,
    encoding: str | None = None,
) -> DistrictFile:
    """Areas from every good feature (features sharing a name merged) and a problem for each bad one."""
    path = Path(path)
    if level not in geo.LEVELS:
        raise FileProblem(
            Problem("level", f"level は {', '.join(geo.LEVELS)} のどれかにしてください")
        )
    features = (
        _features_geojson(path)
        if path.suffix.lower() in {".geojson", ".json"}
        else _features_shapefile(path, encoding)
    )
    result = DistrictFile(features=len(features))
    if features and not any(name_field in props for props, _ in features):
        fields = sorted({k for props, _ in features for k in props})
        raise FileProblem(
            Problem(
                "name_field",
                f"名前の項目「{name_field}」がどの地物にもありません（ある項目: {'、'.join(map(str, fields[:20]))}）",
            )
        )
    parts: dict[str, list[BaseGeometry]] = defaultdict(list)
    kana: dict[str, str] = {}
    for number, (props, geometry) in enumerate(features, start=1):
        if geometry == "not-a-feature":
            result.problems.append(
                _bad(number, 'Feature（{"type": "Feature", ...}）ではありません')
            )
            continue
        name = props.get(name_field)
        name = "" if name is None else str(name).strip()
        if not name:
            result.problems.append(_bad(number, f"名前（{name_field}）がありません"))
            continue
        if geometry is None:
            result.problems.append(
                _bad(number, f"「{name}」に形（geometry）がありません（null）", name)
            )
            continue
        try:
            shaped = geometry if isinstance(geometry, BaseGeometry) else shape(geometry)
        except Exception:  # shapely raises several kinds for bad coordinates
            result.problems.append(
                _bad(
                    number,
                    f"「{name}」の座標を読めません（type と coordinates を確かめてください）",
                    name,
                )
            )
            continue
        area = _area(number, shaped)
        if isinstance(area, Problem):
            result.problems.append(
                Problem(area.field, area.message.replace(": ", f": 「{name}」の", 1), number, name)
            )
            continue
        parts[name].append(area)
        if kana_field and props.get(kana_field) and name not in kana:
            kana[name] = str(props[kana_field])
    code = geo.code6(municipality_code)
    for name, pieces in parts.items():
        geometry = geo.polygonal(shapely.union_all(pieces))
        lat, lon = geo.representative(geometry)
        result.records.append(
            geo.DistrictRecord(
                code,
                name,
                kana.get(name),
                level,
                geometry,
                approximate=False,
                method=geo.METHOD_IMPORTED,
                source=source or path.name,
                members=[],
                lat=lat,
                lon=lon,
            )
        )
    return result
