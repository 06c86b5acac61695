"""Building district records: 町字 Voronoi cells clipped to the boundary, 地区 unions, imported real polygons."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from resdb.domain.shipped import GEO_DIR
from resdb.domain.textnorm import place_key
from resdb.geo.codes import code6
from resdb.geo.municipality import CHIKU_FILE, Anchor, ChikuMember, Municipality, load_municipality
from resdb.geo.records import (
    LEVELS,
    METHOD_BOUNDARY,
    METHOD_CHIKU_UNION,
    METHOD_IMPORTED,
    METHOD_NO_POINT,
    METHOD_VORONOI,
    SOURCE_N03,
    SOURCE_POSTAL,
    SOURCE_SHELTERS,
    SOURCE_TOWNS,
    DistrictRecord,
    polygonal,
    representative,
)


def voronoi_town_cells(municipality: Municipality) -> dict[str, BaseGeometry]:
    """Voronoi cells of the town points (小字 points included) and of the shelter anchors, merged per 町字
    and clipped to the boundary."""
    owners: list[str] = []
    coords: list[tuple[float, float]] = []
    seen: set[tuple[float, float]] = set()
    seeds = [(town.name, point) for town in municipality.towns for point in town.points]
    seeds += [(anchor.town, (anchor.lon, anchor.lat)) for anchor in municipality.anchors]
    for name, point in seeds:
        if point in seen:  # identical coordinates: the first seed keeps the cell
            continue
        seen.add(point)
        owners.append(name)
        coords.append(point)
    cells_by_town: dict[str, BaseGeometry] = {}
    if not coords:
        return cells_by_town
    boundary = municipality.boundary
    minx, miny, maxx, maxy = boundary.bounds
    xs = [x for x, _ in coords] + [minx, maxx]
    ys = [y for _, y in coords] + [miny, maxy]
    margin = max(max(xs) - min(xs), max(ys) - min(ys)) + 0.01
    envelope = shapely.box(min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)
    if len(coords) == 1:
        cells = np.array([envelope])
    else:
        diagram = shapely.voronoi_polygons(
            shapely.multipoints(coords), extend_to=envelope, ordered=True
        )
        cells = shapely.get_parts(diagram)
    owner_array = np.array(owners)
    merged_names = list(dict.fromkeys(owners))
    merged = np.empty(len(merged_names), dtype=object)
    for index, name in enumerate(merged_names):
        selected = cells[owner_array == name]
        merged[index] = selected[0] if len(selected) == 1 else shapely.coverage_union_all(selected)
    shapely.prepare(boundary)
    inside = shapely.contains_properly(boundary, merged)
    clipped = merged.copy()
    if (~inside).any():
        clipped[~inside] = shapely.intersection(merged[~inside], boundary)
    for name, geometry in zip(merged_names, clipped, strict=True):
        cells_by_town[name] = polygonal(geometry)
    return cells_by_town


def _chiku_kana(chiku: str, municipality: Municipality) -> str | None:
    """The reading of a 地区 named after a 町字 (or a 町 with 丁目): 三ヶ地区 → サンガチク; else None."""
    key = place_key(chiku)
    for town in sorted(municipality.towns, key=lambda t: t.chome or 0):
        if place_key(town.base) == key and town.kana_base:
            return town.kana_base + "チク"
    return None


def build_districts(code: str, data_dir: Path = GEO_DIR) -> list[DistrictRecord]:
    """The municipality, its 町字 (Voronoi areas, approximate) and its 地区 (unions of their 町字)."""
    municipality = load_municipality(code, data_dir)
    mcode = municipality.code
    boundary = municipality.boundary
    lat, lon = representative(boundary)
    records = [
        DistrictRecord(
            mcode,
            municipality.name,
            municipality.kana,
            "municipality",
            boundary,
            approximate=False,
            method=METHOD_BOUNDARY,
            source=SOURCE_N03,
            members=[],
            lat=lat,
            lon=lon,
        )
    ]
    cells = voronoi_town_cells(municipality)
    anchored: dict[str, Anchor] = {}
    for anchor in municipality.anchors:
        anchored.setdefault(anchor.town, anchor)
    town_geometry: dict[str, BaseGeometry] = {}
    for town in municipality.towns:
        geometry = cells.get(town.name)
        tlat, tlon = town.lat, town.lon
        if geometry is None:
            geometry = shapely.Polygon()
            method = f"{METHOD_NO_POINT}: no coordinates in the source; its land lies in neighbouring cells"
        elif not town.points:
            method = f"{METHOD_VORONOI}: no 町字 point; cells of shelters placed by address, clipped to N03"
            tlat, tlon = anchored[town.name].lat, anchored[town.name].lon
        else:
            method = f"{METHOD_VORONOI}: cells of 町字 points + shelters placed by address, clipped to N03"
        town_geometry[town.name] = geometry
        records.append(
            DistrictRecord(
                mcode,
                town.name,
                town.kana,
                "town",
                geometry,
                approximate=True,
                method=method,
                source=f"{SOURCE_TOWNS}; {SOURCE_SHELTERS}; {SOURCE_N03}; kana: {SOURCE_POSTAL}",
                members=list(town.koaza),
                lat=tlat,
                lon=tlon,
            )
        )
    by_chiku: dict[str, list[ChikuMember]] = defaultdict(list)
    for member in municipality.chiku:
        by_chiku[member.chiku].append(member)
    for chiku, members in by_chiku.items():
        names = [member.town for member in members if member.town in town_geometry]
        geometry = (
            polygonal(shapely.union_all([town_geometry[name] for name in names]))
            if names
            else shapely.Polygon()
        )
        methods = sorted({member.method for member in members})
        clat, clon = representative(geometry)
        records.append(
            DistrictRecord(
                mcode,
                chiku,
                _chiku_kana(chiku, municipality),
                "chiku",
                geometry,
                approximate=True,
                method=f"{METHOD_CHIKU_UNION} of town cells; members by {'+'.join(methods)}",
                source=f"resdb/data/geo/{municipality.code5}/{CHIKU_FILE}; {SOURCE_TOWNS}; {SOURCE_N03}",
                members=names,
                lat=clat,
                lon=clon,
            )
        )
    return records


def import_district_polygons(
    path: str | Path,
    municipality_code: str,
    name_field: str,
    level: str = "town",
    kana_field: str | None = None,
    source: str | None = None,
    encoding: str | None = None,
) -> list[DistrictRecord]:
    """Real district polygons from a GeoJSON file or a shapefile (reprojected to WGS84), approximate=False.

    Features sharing a name are merged; features without a name or geometry are skipped.
    `encoding` is for shapefiles whose .dbf is not UTF-8 and has no .cpg (e-Stat: "cp932").
    """
    import geopandas as gpd
    import pandas as pd

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    path = Path(path)
    frame = gpd.read_file(path, encoding=encoding) if encoding else gpd.read_file(path)
    if name_field not in frame.columns:
        raise KeyError(
            f"{path.name}: no field {name_field!r} (fields: {', '.join(map(str, frame.columns))})"
        )
    if frame.crs is None:
        frame = frame.set_crs(4326)
    elif frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    mcode = code6(municipality_code)
    geometries: dict[str, list[BaseGeometry]] = defaultdict(list)
    kana: dict[str, str] = {}
    for _, row in frame.iterrows():
        name = row[name_field]
        geometry = row.geometry
        if name is None or pd.isna(name) or geometry is None or geometry.is_empty:
            continue
        name = str(name).strip()
        if not name:
            continue
        geometries[name].append(shapely.make_valid(geometry))
        if (
            kana_field
            and not pd.isna(row.get(kana_field))
            and row.get(kana_field)
            and name not in kana
        ):
            kana[name] = str(row[kana_field])
    records = []
    for name, parts in geometries.items():
        geometry = polygonal(shapely.union_all(parts))
        lat, lon = representative(geometry)
        records.append(
            DistrictRecord(
                mcode,
                name,
                kana.get(name),
                level,
                geometry,
                approximate=False,
                method=METHOD_IMPORTED,
                source=source or path.name,
                members=[],
                lat=lat,
                lon=lon,
            )
        )
    return records


def replace_districts(
    base: Sequence[DistrictRecord], real: Sequence[DistrictRecord]
) -> list[DistrictRecord]:
    """`base` with every record of the same (municipality, level, name) replaced by the imported one."""
    replacement = {(r.municipality_code, r.level, r.name): r for r in real}
    merged = [replacement.pop((r.municipality_code, r.level, r.name), r) for r in base]
    return merged + list(replacement.values())
