"""The built-in base map: each municipality's boundary, 町字 areas and 地区 outlines as small GeoJSON, for maps without tiles."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import shapely
from flask import Blueprint, Response, current_app, request
from shapely.geometry import mapping

from resdb import geo
from resdb.web import get_directory
from resdb.web.errors import ApiError

bp = Blueprint("basemap", __name__)

# About 20 m: outlines stay recognisable at street zoom while a city's file stays a few hundred kB.
SIMPLIFY_DEGREES = 0.0002
GRID_DEGREES = 0.00001
ATTRIBUTION = "行政区域：国土数値情報（行政区域データ）（国土交通省）を加工して作成 ／ 町字：Geolonia 住所データ（CC BY 4.0）"


def _simplified(geometry: Any) -> dict[str, Any] | None:
    if geometry is None or geometry.is_empty:
        return None
    small = shapely.set_precision(
        geometry.simplify(SIMPLIFY_DEGREES, preserve_topology=True), GRID_DEGREES
    )
    if small.is_empty:
        return None
    return mapping(small)


def build_basemap(records: list[geo.DistrictRecord], code: str) -> dict[str, Any] | None:
    """The FeatureCollection for one municipality (6-digit code), or None when the directory has no such area.

    Features carry `level` (municipality | chiku | town), `name`, `approximate` and a label point.
    """
    own = [r for r in records if r.municipality_code == code]
    top = next((r for r in own if r.level == "municipality"), None)
    if top is None:
        return None
    features: list[dict[str, Any]] = []
    order = {"municipality": 0, "chiku": 1, "town": 2}
    for record in sorted(own, key=lambda r: (order.get(r.level, 3), r.name)):
        geometry = _simplified(record.geometry)
        if geometry is None and record.lat is None:
            continue
        if record.lat is not None and record.lon is not None:
            label = [round(record.lon, 5), round(record.lat, 5)]
        elif geometry is not None:
            point = record.geometry.representative_point()
            label = [round(point.x, 5), round(point.y, 5)]
        else:
            label = None
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "level": record.level,
                    "name": record.name,
                    "approximate": bool(record.approximate),
                    "label": label,
                },
            }
        )
    minx, miny, maxx, maxy = top.geometry.bounds
    return {
        "type": "FeatureCollection",
        "municipality": {"code": code, "name": top.name},
        "bbox": [round(minx, 5), round(miny, 5), round(maxx, 5), round(maxy, 5)],
        "attribution": ATTRIBUTION,
        "features": features,
    }


class BasemapCache:
    """Encoded base maps per municipality, rebuilt when the directory's districts change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision: str | None = None
        self._bodies: dict[str, tuple[bytes, str] | None] = {}

    def get(self, code: str) -> tuple[bytes, str] | None:
        directory = get_directory()
        revision = directory.revision().split("/")[1]
        with self._lock:
            if revision != self._revision:
                self._revision, self._bodies = revision, {}
            if code in self._bodies:
                return self._bodies[code]
        body = build_basemap(directory.gazetteer().records, code)
        encoded: tuple[bytes, str] | None = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            encoded = (data, hashlib.sha256(data).hexdigest()[:20])
        with self._lock:
            if revision == self._revision:
                self._bodies[code] = encoded
        return encoded


def municipality_boxes() -> list[dict[str, Any]]:
    """Every municipality with a boundary: code, name, [minLon, minLat, maxLon, maxLat] (the map picks what it shows)."""
    boxes = []
    for record in get_directory().gazetteer().records:
        if record.level == "municipality" and not record.geometry.is_empty:
            minx, miny, maxx, maxy = record.geometry.bounds
            boxes.append(
                {
                    "code": record.municipality_code,
                    "name": record.name,
                    "bbox": [round(minx, 4), round(miny, 4), round(maxx, 4), round(maxy, 4)],
                }
            )
    return sorted(boxes, key=lambda b: b["code"])


def _code6_or_none(code: str | None) -> str | None:
    try:
        return geo.code6(code) if code else None
    except ValueError:
        return None


def tiles_off(tile_url: str | None) -> bool:
    """RESDB_TILE_URL=off (or empty): no tile server; every map draws the built-in base map."""
    return (tile_url or "").strip().lower() in {"", "off", "none", "0"}


def map_settings(municipality: str | None = None) -> dict[str, Any]:
    """What every page's map needs: the tile URL (None when off), its attribution, and the built-in base map
    (URL pattern, municipality boxes, the municipality the page is about, drawn first)."""
    from flask import url_for

    tile_url = current_app.config["TILE_URL"]
    off = tiles_off(tile_url)
    return {
        "tileUrl": None if off else tile_url,
        "tileAttribution": "" if off else current_app.config["TILE_ATTRIBUTION"],
        "basemapUrl": url_for("basemap.municipality", code="__CODE__"),
        "basemapAreas": municipality_boxes(),
        "basemapFocus": _code6_or_none(municipality),
    }


@bp.get("/basemap/<code>.json")
def municipality(code: str) -> Response:
    """One municipality's base map (GeoJSON, cached by ETag; the same bytes until its districts change)."""
    full = _code6_or_none(code) if code.isdigit() and len(code) in (5, 6) else None
    cache: BasemapCache = current_app.extensions["resdb.basemap"]
    found = cache.get(full) if full else None
    if found is None:
        raise ApiError(404, "その市町村の地図はありません。")
    data, tag = found
    response = Response(data, mimetype="application/geo+json")
    response.set_etag(tag)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.make_conditional(request)  # answers 304 in place when the ETag matches
    return response
