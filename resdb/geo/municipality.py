"""One municipality as shipped under resdb/data/geo/<code>/: boundary, 町字 points, 地区 membership, shelter anchors."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from resdb.domain.shipped import GEO_DIR
from resdb.domain.travel import haversine_km
from resdb.geo.codes import chome_kana, code5, code6, split_chome
from resdb.geo.gazetteer import Gazetteer
from resdb.geo.records import DistrictRecord

BOUNDARY_FILE = "boundary_n03_2022.geojson"
TOWN_POINTS_FILE = "town_points_geolonia.csv"
POSTAL_FILE = "postal_towns_kana.csv"
SHELTERS_FILE = "shelters_designated_evacuation_gsi.geojson"
CHIKU_FILE = "chiku.csv"
CHIKU_CENTERS_FILE = "chiku_centers.csv"


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


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [dict(row) for row in csv.DictReader(fh)]


def read_geojson_geometries(path: Path) -> list[tuple[BaseGeometry, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        collection = json.load(fh)
    return [
        (shape(feature["geometry"]), feature.get("properties") or {})
        for feature in collection.get("features", [])
        if feature.get("geometry")
    ]


def municipality_dir(code: str, data_dir: Path) -> Path:
    folder = data_dir / code5(code)
    if not folder.is_dir():
        raise FileNotFoundError(f"no geography for municipality {code} under {data_dir}")
    return folder


@lru_cache(maxsize=32)
def load_municipality_cached(code5_: str, data_dir: Path) -> Municipality:
    folder = municipality_dir(code5_, data_dir)
    parts = [geom for geom, _ in read_geojson_geometries(folder / BOUNDARY_FILE)]
    boundary = shapely.make_valid(shapely.union_all(parts))

    rows = read_csv(folder / TOWN_POINTS_FILE)
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
        for row in read_csv(postal_path):
            if row.get("city_kana"):
                kana = row["city_kana"]
                break

    chiku: tuple[ChikuMember, ...] = ()
    chiku_path = folder / CHIKU_FILE
    if chiku_path.exists():
        chiku = tuple(
            ChikuMember(row["chiku"], row["town"], row.get("method", ""), row.get("source", ""))
            for row in read_csv(chiku_path)
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
    for geometry, properties in read_geojson_geometries(path):
        if not isinstance(geometry, Point) or not boundary.contains(geometry):
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
    return load_municipality_cached(code5(code), Path(data_dir).resolve())


def available_municipalities(data_dir: Path = GEO_DIR) -> list[str]:
    """6-digit codes of the municipalities shipped under data_dir."""
    return sorted(
        code6(folder.name)
        for folder in Path(data_dir).iterdir()
        if folder.is_dir() and folder.name.isdigit() and (folder / BOUNDARY_FILE).exists()
    )
