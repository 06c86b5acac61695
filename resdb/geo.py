"""Geography: municipal boundaries, 町字 and 地区 areas, name/address lookup and point-in-area indexes (pure, shapely)."""

from __future__ import annotations

import csv
import json
import re
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from resdb.domain.shipped import GEO_DIR
from resdb.domain.textnorm import fold, normalize, place_key
from resdb.domain.travel import haversine_km

LEVELS = ("municipality", "town", "chiku")

BOUNDARY_FILE = "boundary_n03_2022.geojson"
TOWN_POINTS_FILE = "town_points_geolonia.csv"
POSTAL_FILE = "postal_towns_kana.csv"
SHELTERS_FILE = "shelters_designated_evacuation_gsi.geojson"
CHIKU_FILE = "chiku.csv"
CHIKU_CENTERS_FILE = "chiku_centers.csv"

SOURCE_N03 = "国土交通省 国土数値情報 行政区域データ N03 (2022-01-01)"
SOURCE_TOWNS = "Geolonia 住所データ (CC BY 4.0; 位置参照情報に基づく)"
SOURCE_POSTAL = "日本郵便 郵便番号データ"
SOURCE_SHELTERS = "国土地理院 指定緊急避難場所・指定避難所データ"

METHOD_BOUNDARY = "n03_boundary"
METHOD_VORONOI = "voronoi_town_points"
METHOD_NO_POINT = "no_point"
METHOD_CHIKU_UNION = "union_of_member_towns"
METHOD_IMPORTED = "imported_polygons"

# Names a plan uses for "the whole municipality" (障がい者相談支援 etc.: 担当地区 = 全市).
WHOLE_MUNICIPALITY = frozenset(
    normalize(name)
    for name in (
        "全市",
        "市全域",
        "市内全域",
        "全域",
        "全町",
        "町全域",
        "町内全域",
        "全村",
        "村全域",
    )
)

_KANJI_DIGITS = "〇一二三四五六七八九"
_CHOME_RE = re.compile(r"^(?P<base>.+?)(?P<num>[一二三四五六七八九十]+)丁目$")
_ARABIC_CHOME_RE = re.compile(r"(\d+)\s*丁目")
_PREF_RE = re.compile(r"^(北海道|東京都|京都府|大阪府|.{2,3}?県)")
_OTHER_MUNICIPALITY_RE = re.compile(r"^[^\d\s]{1,5}?[市郡]")
_LEADING_NUMBER_RE = re.compile(r"^(\d+)\s*[-‐－ー−―の]")
_AREA_SEPARATORS = re.compile(r"[、,，・･/／\s]+")

_CHOME_KANA_UNITS = ("", "イチ", "ニ", "サン", "ヨン", "ゴ", "ロク", "ナナ", "ハチ", "キュウ")


# --------------------------------------------------------------------------- codes and numerals


def check_digit(code5: str) -> str:
    """The check digit of a 5-digit 全国地方公共団体コード (weights 6,5,4,3,2; mod 11)."""
    if len(code5) != 5 or not code5.isdigit():
        raise ValueError(f"not a 5-digit municipality code: {code5!r}")
    total = sum(int(digit) * weight for digit, weight in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def code6(code: str) -> str:
    """The 6-digit municipality code (with check digit) from a 5- or 6-digit code."""
    code = code.strip()
    if len(code) == 6 and code.isdigit():
        if check_digit(code[:5]) != code[5]:
            raise ValueError(f"bad check digit in municipality code {code!r}")
        return code
    return code + check_digit(code)


def code5(code: str) -> str:
    """The 5-digit municipality code (the data folder name) from a 5- or 6-digit code."""
    return code6(code)[:5]


def kanji_number(value: int) -> str:
    """1..99 as the kanji numeral used in 町字 names (11 → 十一, 20 → 二十)."""
    if not 0 < value < 100:
        raise ValueError(f"out of range for a 丁目 numeral: {value}")
    tens, units = divmod(value, 10)
    text = ""
    if tens:
        text = ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十"
    if units:
        text += _KANJI_DIGITS[units]
    return text


def parse_kanji_number(text: str) -> int | None:
    """The value of a kanji numeral up to 99 (十九 → 19), or None."""
    if not text or any(ch not in _KANJI_DIGITS + "十" for ch in text) or text.count("十") > 1:
        return None
    if "十" in text:
        tens_text, _, units_text = text.partition("十")
        if len(tens_text) > 1 or len(units_text) > 1:
            return None
        tens = _KANJI_DIGITS.index(tens_text) if tens_text else 1
        units = _KANJI_DIGITS.index(units_text) if units_text else 0
        return tens * 10 + units
    return _KANJI_DIGITS.index(text) if len(text) == 1 else None


def chome_kana(value: int) -> str:
    """Reading of "N丁目" in katakana (3 → サンチョウメ, 1 → イッチョウメ, 10 → ジュッチョウメ)."""
    tens, units = divmod(value, 10)
    head = ""
    if tens:
        head = ("" if tens == 1 else _CHOME_KANA_UNITS[tens]) + "ジュウ"
    if units:
        unit = _CHOME_KANA_UNITS[units]
        head += {1: "イッ", 8: "ハッ"}.get(units, unit)
    elif head:
        head = head[:-1] + "ッ"  # ジュウ → ジュッ
    return head + "チョウメ"


def split_chome(town: str) -> tuple[str, int | None]:
    """(base name, 丁目 number) of a 町字 name: 南太閤山三丁目 → (南太閤山, 3); 戸破 → (戸破, None)."""
    match = _CHOME_RE.match(town)
    if match:
        number = parse_kanji_number(match.group("num"))
        if number:
            return match.group("base"), number
    return town, None


def arabic_chome_to_kanji(text: str) -> str:
    """Rewrite arabic 丁目 numbers as the kanji the 町字 names use: 3丁目 → 三丁目 (after NFKC)."""
    text = unicodedata.normalize("NFKC", text)

    def repl(match: re.Match[str]) -> str:
        value = int(match.group(1))
        return f"{kanji_number(value)}丁目" if 0 < value < 100 else match.group(0)

    return _ARABIC_CHOME_RE.sub(repl, text)


def split_area_names(text: str) -> list[str]:
    """Split a 担当地区 cell such as "坂浜・平尾" or "庄西町、港町" into names."""
    return [part for part in _AREA_SEPARATORS.split(text.strip()) if part]


def _town_key(name: str) -> str:
    return place_key(arabic_chome_to_kanji(name))


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class TownPoint:
    """A 町字 (大字・町丁目) with its representative point and the 小字 points merged into it."""

    name: str
    base: str
    chome: int | None
    kana: str | None  # reading of the whole name (base reading + generated 丁目 reading)
    kana_base: str | None  # reading of the base name, as in the source
    lat: float | None
    lon: float | None
    points: tuple[
        tuple[float, float], ...
    ] = ()  # every (lon, lat) of the town, 小字 points included
    koaza: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChikuMember:
    """One row of chiku.csv: a 町字 belonging to a 地区, how that was decided, and from what."""

    chiku: str
    town: str
    method: str
    source: str


@dataclass(frozen=True)
class Anchor:
    """An extra Voronoi seed: a designated shelter whose address names its 町字 (its point is exact)."""

    town: str
    lon: float
    lat: float
    label: str


@dataclass(frozen=True)
class Municipality:
    """One municipality's geography as shipped under resdb/data/geo/<code>/."""

    code: str  # 6-digit, with check digit
    pref: str
    name: str  # as the town points give it (大島郡和泊町)
    kana: str | None
    boundary: BaseGeometry
    towns: tuple[TownPoint, ...]
    chiku: tuple[ChikuMember, ...] = ()
    anchors: tuple[Anchor, ...] = ()

    @property
    def code5(self) -> str:
        return self.code[:5]

    def town(self, name: str) -> TownPoint | None:
        for town in self.towns:
            if town.name == name:
                return town
        return None

    def chiku_names(self) -> list[str]:
        """The 地区 names in chiku.csv order."""
        return list(dict.fromkeys(member.chiku for member in self.chiku))

    def chiku_members(self, chiku: str) -> list[str]:
        return [member.town for member in self.chiku if member.chiku == chiku]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [dict(row) for row in csv.DictReader(fh)]


def _read_geojson_geometries(path: Path) -> list[tuple[BaseGeometry, dict]]:
    with path.open(encoding="utf-8") as fh:
        collection = json.load(fh)
    return [
        (shape(feature["geometry"]), feature.get("properties") or {})
        for feature in collection.get("features", [])
        if feature.get("geometry")
    ]


def _municipality_dir(code: str, data_dir: Path) -> Path:
    folder = data_dir / code5(code)
    if not folder.is_dir():
        raise FileNotFoundError(f"no geography for municipality {code} under {data_dir}")
    return folder


@lru_cache(maxsize=32)
def _load_municipality_cached(code5_: str, data_dir: Path) -> Municipality:
    folder = _municipality_dir(code5_, data_dir)
    parts = [geom for geom, _ in _read_geojson_geometries(folder / BOUNDARY_FILE)]
    boundary = shapely.make_valid(shapely.union_all(parts))

    rows = _read_csv(folder / TOWN_POINTS_FILE)
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[row["town"]].append(row)
    towns = []
    for name, group in grouped.items():
        plain = [row for row in group if not row.get("koaza")]
        head = (plain or group)[0]
        base, chome = split_chome(name)
        kana_base = head.get("kana_base") or None
        kana = kana_base + chome_kana(chome) if kana_base and chome else kana_base
        points = tuple(
            (float(row["lng"]), float(row["lat"]))
            for row in group
            if row.get("lat") and row.get("lng")
        )
        lat = float(head["lat"]) if head.get("lat") else (points[0][1] if points else None)
        lon = float(head["lng"]) if head.get("lng") else (points[0][0] if points else None)
        koaza = tuple(row["koaza"] for row in group if row.get("koaza"))
        towns.append(TownPoint(name, base, chome, kana, kana_base, lat, lon, points, koaza))

    pref = rows[0]["pref"] if rows else ""
    city = rows[0]["city"] if rows else ""
    kana = None
    postal_path = folder / POSTAL_FILE
    if postal_path.exists():
        for row in _read_csv(postal_path):
            if row.get("city_kana"):
                kana = row["city_kana"]
                break

    chiku: tuple[ChikuMember, ...] = ()
    chiku_path = folder / CHIKU_FILE
    if chiku_path.exists():
        chiku = tuple(
            ChikuMember(row["chiku"], row["town"], row.get("method", ""), row.get("source", ""))
            for row in _read_csv(chiku_path)
            if row.get("chiku") and row.get("town")
        )
    municipality = Municipality(code6(code5_), pref, city, kana, boundary, tuple(towns), chiku)
    anchors = _shelter_anchors(municipality, folder / SHELTERS_FILE)
    return Municipality(code6(code5_), pref, city, kana, boundary, tuple(towns), chiku, anchors)


ANCHOR_MIN_KM = 2.0  # a shelter this close to a point of the 町字 its address names is always kept
ANCHOR_SPACING_FACTOR = (
    3.0  # …and up to this many times the 町字's distance to its nearest neighbour
)


def _shelter_anchors(municipality: Municipality, path: Path) -> tuple[Anchor, ...]:
    """Shelters inside the boundary whose address places them in a 町字 near that 町字's points.

    "Near" is max(ANCHOR_MIN_KM, ANCHOR_SPACING_FACTOR × distance from the 町字 point to the nearest
    point of another 町字), so large rural 大字 accept far-off shelters and mis-geocoded ones are
    dropped.
    """
    if not path.exists():
        return ()
    records = [
        DistrictRecord(
            municipality.code,
            municipality.name,
            None,
            "municipality",
            shapely.Polygon(),
            False,
            "",
            "",
        )
    ]
    for town in municipality.towns:
        records.append(
            DistrictRecord(
                municipality.code,
                town.name,
                None,
                "town",
                shapely.Polygon(),
                True,
                "",
                "",
                lat=town.lat,
                lon=town.lon,
            )
        )
    gazetteer = Gazetteer(records)
    towns = {town.name: town for town in municipality.towns}
    owners = np.array([town.name for town in municipality.towns for _ in town.points])
    coords = np.array(
        [point for town in municipality.towns for point in town.points], dtype=float
    ).reshape(-1, 2)
    km_x = 111.32 * np.cos(np.radians(coords[:, 1].mean())) if len(coords) else 111.32

    def spacing_km(town: TownPoint) -> float:
        others = coords[owners != town.name]
        if town.lat is None or town.lon is None or not len(others):
            return 0.0
        dx = (others[:, 0] - town.lon) * km_x
        dy = (others[:, 1] - town.lat) * 111.32
        return float(np.sqrt(dx * dx + dy * dy).min())

    boundary = municipality.boundary
    shapely.prepare(boundary)
    limits: dict[str, float] = {}
    anchors = []
    for geometry, properties in _read_geojson_geometries(path):
        if geometry.geom_type != "Point" or not boundary.contains(geometry):
            continue
        placed = gazetteer.place_address(str(properties.get("住所") or ""), municipality.code)
        if placed is None:
            continue
        town = towns[placed.town]
        # A 町字 without coordinates (坂浜五丁目) is checked against its 町 without 丁目 (坂浜).
        reference = town if town.points else towns.get(town.base)
        if reference is not None and reference.points:
            if reference.name not in limits:
                limits[reference.name] = max(
                    ANCHOR_MIN_KM, ANCHOR_SPACING_FACTOR * spacing_km(reference)
                )
            distance = min(
                haversine_km(geometry.y, geometry.x, lat, lon) for lon, lat in reference.points
            )
            if distance > limits[reference.name]:
                continue
        anchors.append(
            Anchor(town.name, geometry.x, geometry.y, str(properties.get("施設・場所名") or ""))
        )
    return tuple(anchors)


def load_municipality(code: str, data_dir: Path = GEO_DIR) -> Municipality:
    """Boundary, 町字 points (name, kana, lat, lon) and 地区 membership of one municipality."""
    return _load_municipality_cached(code5(code), Path(data_dir).resolve())


def available_municipalities(data_dir: Path = GEO_DIR) -> list[str]:
    """6-digit codes of the municipalities shipped under data_dir."""
    return sorted(
        code6(folder.name)
        for folder in Path(data_dir).iterdir()
        if folder.is_dir() and folder.name.isdigit() and (folder / BOUNDARY_FILE).exists()
    )


# --------------------------------------------------------------------------- district records


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


def _representative(geometry: BaseGeometry) -> tuple[float | None, float | None]:
    if geometry.is_empty:
        return None, None
    point = geometry.representative_point()
    return point.y, point.x


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the polygon parts of an overlay result (drops slivers collapsed to lines/points)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon") or geometry.is_empty:
        return geometry
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if part.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts) if parts else shapely.Polygon()


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
        cells_by_town[name] = _polygonal(geometry)
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
    lat, lon = _representative(boundary)
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
            _polygonal(shapely.union_all([town_geometry[name] for name in names]))
            if names
            else shapely.Polygon()
        )
        methods = sorted({member.method for member in members})
        clat, clon = _representative(geometry)
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
        geometry = _polygonal(shapely.union_all(parts))
        lat, lon = _representative(geometry)
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


# --------------------------------------------------------------------------- gazetteer


@dataclass(frozen=True)
class Placement:
    """Where an address was placed: the representative point of its 町字."""

    municipality_code: str
    town: str
    lat: float
    lon: float
    precision: str = "town"


@dataclass
class _MunicipalityIndex:
    record: DistrictRecord | None = None
    aliases: list[str] = field(default_factory=list)  # folded names an address may start with
    towns: dict[str, DistrictRecord] = field(default_factory=dict)  # place_key → town
    chiku: dict[str, DistrictRecord] = field(default_factory=dict)  # place_key → 地区
    chome: dict[str, dict[int, DistrictRecord]] = field(
        default_factory=dict
    )  # base key → {n: town}
    max_key: int = 0


class Gazetteer:
    """Names and addresses to areas and points, over a list of DistrictRecord (several municipalities)."""

    def __init__(self, records: Iterable[DistrictRecord]) -> None:
        self.records = list(records)
        self._by_code: dict[str, _MunicipalityIndex] = defaultdict(_MunicipalityIndex)
        towns: list[DistrictRecord] = []
        for record in self.records:
            index = self._by_code[record.municipality_code]
            if record.level == "municipality":
                index.record = record
                names = {record.name, re.sub(r"^.+?郡", "", record.name)}
                index.aliases = sorted(
                    {fold(name) for name in names if name}, key=len, reverse=True
                )
            elif record.level == "town":
                key = _town_key(record.name)
                index.towns.setdefault(key, record)
                index.max_key = max(index.max_key, len(key))
                base, number = split_chome(record.name)
                if number is not None:
                    index.chome.setdefault(_town_key(base), {})[number] = record
                if not record.geometry.is_empty:
                    towns.append(record)
            elif record.level == "chiku":
                index.chiku.setdefault(place_key(record.name), record)
        self._town_records = towns
        self._town_tree = shapely.STRtree([record.geometry for record in towns])
        for record in towns:
            shapely.prepare(record.geometry)

    # -- names

    def municipality(self, code: str) -> DistrictRecord | None:
        index = self._by_code.get(code6(code))
        return index.record if index else None

    def _codes(self, municipality_code: str | None) -> list[str]:
        if municipality_code:
            code = code6(municipality_code)
            return [code] if code in self._by_code else []
        return list(self._by_code)

    def _match_in(self, index: _MunicipalityIndex, name: str) -> list[DistrictRecord]:
        raw = normalize(arabic_chome_to_kanji(name.strip()))
        key = _town_key(name)
        if not key:
            return []
        if raw in WHOLE_MUNICIPALITY or (
            index.record and key in {place_key(a) for a in index.aliases}
        ):
            return [index.record] if index.record else []
        says_chiku = any(raw.endswith(normalize(suffix)) for suffix in ("地区", "地域", "校区"))
        chiku = index.chiku.get(key)
        if says_chiku and chiku:
            return [chiku]
        towns: list[DistrictRecord] = []
        if key in index.towns:
            towns.append(index.towns[key])
        for _, record in sorted(index.chome.get(key, {}).items()):
            towns.append(record)
        if towns:
            return towns
        if chiku:
            return [chiku]
        return []

    def match(self, name: str, municipality_code: str | None = None) -> list[DistrictRecord]:
        """The records a 担当地区 name stands for: a 地区, a 町字, or a 町 with its 丁目 (庄西町 → 一丁目, 二丁目).

        Without a municipality code the name must be found in exactly one municipality.
        """
        found: list[list[DistrictRecord]] = []
        for code in self._codes(municipality_code):
            matched = self._match_in(self._by_code[code], name)
            if matched:
                found.append(matched)
        return found[0] if len(found) == 1 else []

    def _fill_empty(self, record: DistrictRecord, code: str) -> BaseGeometry:
        """A town without a point has no cell: stand in the cell of its base 町字 (坂浜三丁目 → 坂浜)."""
        if not record.geometry.is_empty or record.level != "town":
            return record.geometry
        base, number = split_chome(record.name)
        parent = self._by_code[code].towns.get(_town_key(base)) if number is not None else None
        return parent.geometry if parent is not None else record.geometry

    def resolve(
        self, names: Sequence[str], municipality_code: str | None = None
    ) -> tuple[BaseGeometry | None, list[str]]:
        """Union of the areas of the names, and the names that matched nothing (in input order)."""
        parts: list[BaseGeometry] = []
        unresolved: list[str] = []
        for name in names:
            matched = self.match(name, municipality_code)
            if not matched and len(split_area_names(name)) > 1:
                pieces = split_area_names(name)
                geometry, missing = self.resolve(pieces, municipality_code)
                if geometry is not None:
                    parts.append(geometry)
                unresolved.extend(missing)
                continue
            geometries = [self._fill_empty(record, record.municipality_code) for record in matched]
            geometries = [geometry for geometry in geometries if not geometry.is_empty]
            if not geometries:
                unresolved.append(name)
                continue
            parts.extend(geometries)
        if not parts:
            return None, unresolved
        return _polygonal(shapely.union_all(parts)), unresolved

    # -- addresses

    def _strip_municipality(
        self, text: str, municipality_code: str | None
    ) -> list[tuple[str, str]]:
        """(code, rest of the address) for each municipality the address may be in."""
        folded = fold(text)
        without_pref = _PREF_RE.sub("", folded, count=1)
        candidates: list[tuple[str, str]] = []
        codes = self._codes(municipality_code)
        for code in codes:
            for alias in self._by_code[code].aliases:
                for variant in (folded, without_pref):
                    if variant.startswith(alias):
                        candidates.append((code, variant[len(alias) :]))
                        break
                else:
                    continue
                break
        if candidates:
            return candidates
        if without_pref != folded:
            return []  # a prefecture, then a municipality that is not (one of) ours
        if municipality_code is None and _OTHER_MUNICIPALITY_RE.match(folded):
            return []  # "高岡市下牧野…": names a municipality we do not hold
        # No municipality name in the address: only the given municipality, or every one.
        return [(code, folded) for code in codes]

    def _town_in(self, index: _MunicipalityIndex, rest: str) -> DistrictRecord | None:
        rest = rest.lstrip()
        for prefix in ("大字", "字"):
            if rest.startswith(prefix):
                rest = rest[len(prefix) :]
                break
        rest = normalize(arabic_chome_to_kanji(rest))
        best: DistrictRecord | None = None
        best_len = 0
        for length in range(min(len(rest), index.max_key), 0, -1):
            record = index.towns.get(rest[:length])
            if record is not None:
                best, best_len = record, length
                break
        # "南太閤山3-2-1": a 町 with 丁目 towns followed by a number and a dash.
        for length in range(len(rest), best_len - 1, -1):
            chome = index.chome.get(rest[:length])
            if chome is None:
                continue
            number = _LEADING_NUMBER_RE.match(rest[length:])
            if number and int(number.group(1)) in chome:
                return chome[int(number.group(1))]
            break
        return best

    def place_address(self, address: str, municipality_code: str | None = None) -> Placement | None:
        """The 町字 point of an address ("富山県射水市戸破2475番地" → 戸破), or None when not placeable.

        The prefecture and municipality prefix may be missing when municipality_code is given
        (or when the town name is found in only one municipality).
        """
        if not address or not address.strip():
            return None
        text = arabic_chome_to_kanji(address.strip())
        found: list[tuple[str, DistrictRecord]] = []
        for code, rest in self._strip_municipality(text, municipality_code):
            record = self._town_in(self._by_code[code], rest)
            if record is not None:
                found.append((code, record))
        if len(found) != 1:
            return None
        code, record = found[0]
        if record.lat is not None and record.lon is not None:
            return Placement(code, record.name, record.lat, record.lon, "town")
        base, number = split_chome(record.name)
        parent = self._by_code[code].towns.get(_town_key(base)) if number is not None else None
        if parent is not None and parent.lat is not None and parent.lon is not None:
            return Placement(code, record.name, parent.lat, parent.lon, "town_base")
        return None

    # -- points

    def town_at(
        self, lat: float, lon: float, municipality_code: str | None = None
    ) -> DistrictRecord | None:
        """The 町字 whose area holds the point (None outside every area)."""
        point = shapely.Point(lon, lat)
        code = code6(municipality_code) if municipality_code else None
        for position in sorted(self._town_tree.query(point, predicate="intersects")):
            record = self._town_records[int(position)]
            if code is None or record.municipality_code == code:
                return record
        return None


# --------------------------------------------------------------------------- area index


class AreaIndex:
    """Which service areas hold a point: STRtree over prepared geometries (answers in microseconds)."""

    def __init__(self, areas: Iterable[tuple[str, BaseGeometry | None]]) -> None:
        ids: list[str] = []
        geometries: list[BaseGeometry] = []
        for area_id, geometry in areas:
            if geometry is None or geometry.is_empty:
                continue
            ids.append(area_id)
            geometries.append(geometry)
        self._ids = ids
        self._geometries = np.array(geometries, dtype=object)
        shapely.prepare(self._geometries)
        self._tree = shapely.STRtree(self._geometries)

    def __len__(self) -> int:
        return len(self._ids)

    def lookup(self, lat: float, lon: float) -> list[str]:
        """Ids of the areas covering the point, in the order they were given."""
        if not self._ids:
            return []
        point = shapely.Point(lon, lat)
        candidates = self._tree.query(point)
        if len(candidates) == 0:
            return []
        candidates = np.sort(candidates)
        hits = candidates[shapely.intersects(self._geometries[candidates], point)]
        return [self._ids[int(position)] for position in hits]


# --------------------------------------------------------------------------- deriving chiku.csv


@dataclass(frozen=True)
class ChikuCenter:
    """The seed of one 地区: its community centre (from the shelter file) or, lacking one, a town point."""

    chiku: str
    facility: str
    lat: float
    lon: float
    town: str  # the 町字 the facility stands in
    dataset: str = SOURCE_SHELTERS


def _postal_areas(folder: Path) -> dict[str, set[str]]:
    """Folded postal 町域 name → its 6-digit postcode prefixes (the delivery areas)."""
    areas: dict[str, set[str]] = defaultdict(set)
    path = folder / POSTAL_FILE
    if not path.exists():
        return areas
    for row in _read_csv(path):
        name = re.sub(r"[（(].*$", "", row.get("town") or "")
        if name and row.get("postcode"):
            areas[place_key(name)].add(row["postcode"][:6])
    return areas


def load_chiku_centers(code: str, data_dir: Path = GEO_DIR) -> list[ChikuCenter]:
    """The 地区 seeds listed in resdb/data/geo/<code>/chiku_centers.csv, located via the shelter file."""
    municipality = load_municipality(code, data_dir)
    folder = _municipality_dir(code, Path(data_dir))
    facilities: dict[str, tuple[BaseGeometry, dict]] = {}
    for geometry, properties in _read_geojson_geometries(folder / SHELTERS_FILE):
        facilities.setdefault(properties.get("施設・場所名", ""), (geometry, properties))
    gazetteer = Gazetteer(build_districts(code, data_dir))
    centers = []
    for row in _read_csv(folder / CHIKU_CENTERS_FILE):
        facility = row["facility"]
        if facility.startswith("town:"):
            town = municipality.town(facility[len("town:") :])
            if town is None or town.lat is None or town.lon is None:
                raise ValueError(f"{CHIKU_CENTERS_FILE}: unknown town {facility}")
            label = f"{town.name}の町字代表点"
            centers.append(
                ChikuCenter(row["chiku"], label, town.lat, town.lon, town.name, SOURCE_TOWNS)
            )
            continue
        if facility not in facilities:
            raise ValueError(f"{CHIKU_CENTERS_FILE}: {facility} is not in {SHELTERS_FILE}")
        geometry, properties = facilities[facility]
        placed = gazetteer.place_address(properties.get("住所", ""), municipality.code)
        town_record = gazetteer.town_at(geometry.y, geometry.x, municipality.code)
        town = placed.town if placed else (town_record.name if town_record else "")
        centers.append(ChikuCenter(row["chiku"], facility, geometry.y, geometry.x, town))
    return centers


def derive_chiku_membership(code: str, data_dir: Path = GEO_DIR) -> list[ChikuMember]:
    """Assign every 町字 to one 地区 (the rows of chiku.csv), from the seeds in chiku_centers.csv.

    The 町字 of one 町 (its 丁目) are decided together. Rules, first that applies:

    1. name_match: the base name is the 地区 name or starts with it (2+ characters): 本江北 → 本江地区;
       not when the rest of the name is itself a 地区 name (大門本江 is 本江 of old 大門町).
    2. postal_area: the town's 6-digit postcode areas (日本郵便) hold the centre of exactly one 地区.
    3. nearest_community_center: the nearest 地区 centre (straight line) —
       among the centres in the town's postcode areas when there are several; for towns whose
       postcode area holds no centre, the whole area is kept together and goes to the centre
       nearest its mean point, among the centres of the same 5-digit postcode region; towns
       without a postcode go to the nearest centre of all.

    Only rule 1 is evidence about the 地区 itself; rules 2 and 3 are approximations (the method column
    says which applied, the source column why).
    """
    municipality = load_municipality(code, data_dir)
    folder = _municipality_dir(code, Path(data_dir))
    centers = load_chiku_centers(code, data_dir)
    postal = _postal_areas(folder)
    by_chiku = {center.chiku: center for center in centers}
    town_by_name = {town.name: town for town in municipality.towns}

    groups: dict[str, list[TownPoint]] = defaultdict(list)  # base name → its 町字 (丁目 siblings)
    for town in municipality.towns:
        groups[town.base].append(town)

    def areas_of(base: str) -> frozenset[str]:
        return frozenset(postal.get(place_key(base), set()))

    def area_text(areas: Iterable[str]) -> str:
        return "/".join(sorted(area + "x" for area in areas))

    def center_areas(center: ChikuCenter) -> frozenset[str]:
        town = town_by_name.get(center.town)
        return areas_of(town.base) if town else frozenset()

    chiku_in_area: dict[str, set[str]] = defaultdict(set)  # 6-digit area → 地区 with a centre there
    for center in centers:
        for area in center_areas(center):
            chiku_in_area[area].add(center.chiku)
    chiku_keys = sorted(
        ((place_key(c.chiku), c.chiku) for c in centers), key=lambda kc: len(kc[0]), reverse=True
    )
    all_keys = {key for key, _ in chiku_keys}

    def nearest(towns: Sequence[TownPoint], candidates: Iterable[str]) -> tuple[str, float] | None:
        located = [
            (town.lat, town.lon) for town in towns if town.lat is not None and town.lon is not None
        ]
        if not located:
            return None
        lat = sum(point[0] for point in located) / len(located)
        lon = sum(point[1] for point in located) / len(located)
        return min(
            (
                (name, haversine_km(lat, lon, by_chiku[name].lat, by_chiku[name].lon))
                for name in candidates
            ),
            key=lambda pair: (pair[1], pair[0]),
        )

    def by_nearest(bases: Sequence[str], candidates: Iterable[str], scope: str) -> None:
        found = nearest([town for base in bases for town in groups[base]], candidates)
        if found is None:
            return  # no point and no other evidence: left out of every 地区
        chiku, distance = found
        center = by_chiku[chiku]
        source = f"{center.facility} ({center.dataset}); {scope}, 直線 {distance:.2f} km"
        for base in bases:
            decided[base] = (chiku, "nearest_community_center", source)

    decided: dict[str, tuple[str, str, str]] = {}  # base → (chiku, method, source)
    for base in groups:
        base_key = place_key(base)
        for key, chiku in chiku_keys:
            if base_key == key or (
                len(key) >= 2 and base_key.startswith(key) and base_key[len(key) :] not in all_keys
            ):
                decided[base] = (chiku, "name_match", f"町字名「{base}」が地区名で始まる")
                break

    no_center_blocks: dict[frozenset[str], list[str]] = defaultdict(list)
    for base in groups:
        if base in decided:
            continue
        areas = areas_of(base)
        with_center = set().union(*(chiku_in_area.get(area, set()) for area in areas))
        if len(with_center) == 1:
            chiku = next(iter(with_center))
            decided[base] = (
                chiku,
                "postal_area",
                f"{SOURCE_POSTAL}: 郵便番号 {area_text(areas)} の区域にある地区拠点は {by_chiku[chiku].facility} のみ",
            )
        elif with_center:
            by_nearest([base], with_center, f"郵便番号 {area_text(areas)} の区域の拠点のうち最寄り")
        elif areas:
            no_center_blocks[areas].append(base)
        else:
            by_nearest([base], by_chiku, "郵便番号の手掛かり無し、全拠点のうち最寄り")

    for areas, bases in no_center_blocks.items():
        regions = {area[:5] for area in areas}
        candidates = [
            c.chiku for c in centers if any(area[:5] in regions for area in center_areas(c))
        ]
        scope = (
            f"郵便番号 {area_text(areas)} の区域 (地区拠点なし) の町字をまとめ、その重心から"
            f"{'/'.join(sorted(r + 'xx' for r in regions))} 地域の拠点のうち最寄り"
        )
        if not candidates:
            candidates, scope = (
                list(by_chiku),
                f"郵便番号 {area_text(areas)} の区域の町字をまとめ、全拠点のうち最寄り",
            )
        by_nearest(bases, candidates, scope)

    order = {center.chiku: position for position, center in enumerate(centers)}
    rows = [
        ChikuMember(decided[town.base][0], town.name, decided[town.base][1], decided[town.base][2])
        for town in municipality.towns
        if town.base in decided
    ]
    rows.sort(key=lambda row: order[row.chiku])
    return rows


def write_chiku_csv(code: str, data_dir: Path = GEO_DIR) -> Path:
    """Derive and write resdb/data/geo/<code>/chiku.csv (run: python -m resdb.geo chiku CODE)."""
    rows = derive_chiku_membership(code, data_dir)
    path = _municipality_dir(code, Path(data_dir)) / CHIKU_FILE
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["chiku", "town", "method", "source"])
        for row in rows:
            writer.writerow([row.chiku, row.town, row.method, row.source])
    _load_municipality_cached.cache_clear()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m resdb.geo chiku CODE` rewrites chiku.csv; `python -m resdb.geo summary CODE` prints areas."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("chiku", "summary"):
        print("usage: python -m resdb.geo chiku|summary CODE", file=sys.stderr)
        return 2
    command, code = args
    if command == "chiku":
        print(write_chiku_csv(code))
        return 0
    for record in build_districts(code):
        print(
            record.level,
            record.name,
            record.kana or "",
            f"{record.geometry.area:.6f}",
            record.method,
            sep="\t",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
