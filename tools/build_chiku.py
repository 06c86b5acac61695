#!/usr/bin/env python3
"""Build chiku.csv (which 地区 each 町字 belongs to) from a municipality's chiku_centers.csv.

For a municipality under resdb/data/geo/<code>/ this reads chiku_centers.csv (each 地区 and the
community centre, or 町字 point, that seeds it), the shelter file (where the centres stand), the
町字 points and the postal 町域 file, and writes

    resdb/data/geo/<code>/chiku.csv

with one row per 町字: its 地区, the rule that decided it (`method`) and the evidence (`source`);
see `derive_chiku_membership` and resdb/data/geo/SOURCES.md. The product only reads chiku.csv
(resdb.geo.load_municipality); developers run this script and commit its output.

    python tools/build_chiku.py chiku 16211      # rewrite chiku.csv
    python tools/build_chiku.py summary 16211    # print the built districts
"""

from __future__ import annotations

import csv
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry.base import BaseGeometry

from resdb.domain.shipped import GEO_DIR
from resdb.domain.textnorm import place_key
from resdb.domain.travel import haversine_km
from resdb.geo import (
    CHIKU_CENTERS_FILE,
    CHIKU_FILE,
    POSTAL_FILE,
    SHELTERS_FILE,
    SOURCE_POSTAL,
    SOURCE_SHELTERS,
    SOURCE_TOWNS,
    ChikuMember,
    Gazetteer,
    TownPoint,
    build_districts,
    load_municipality,
)
from resdb.geo.municipality import (
    load_municipality_cached,
    municipality_dir,
    read_csv,
    read_geojson_geometries,
)


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
    for row in read_csv(path):
        name = re.sub(r"[（(].*$", "", row.get("town") or "")
        if name and row.get("postcode"):
            areas[place_key(name)].add(row["postcode"][:6])
    return areas


def load_chiku_centers(code: str, data_dir: Path = GEO_DIR) -> list[ChikuCenter]:
    """The 地区 seeds listed in resdb/data/geo/<code>/chiku_centers.csv, located via the shelter file."""
    municipality = load_municipality(code, data_dir)
    folder = municipality_dir(code, Path(data_dir))
    facilities: dict[str, tuple[BaseGeometry, dict]] = {}
    for geometry, properties in read_geojson_geometries(folder / SHELTERS_FILE):
        facilities.setdefault(properties.get("施設・場所名", ""), (geometry, properties))
    gazetteer = Gazetteer(build_districts(code, data_dir))
    centers = []
    for row in read_csv(folder / CHIKU_CENTERS_FILE):
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
    folder = municipality_dir(code, Path(data_dir))
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
    """Derive and write resdb/data/geo/<code>/chiku.csv (run: python tools/build_chiku.py chiku CODE)."""
    rows = derive_chiku_membership(code, data_dir)
    path = municipality_dir(code, Path(data_dir)) / CHIKU_FILE
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["chiku", "town", "method", "source"])
        for row in rows:
            writer.writerow([row.chiku, row.town, row.method, row.source])
    load_municipality_cached.cache_clear()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """`chiku CODE` rewrites chiku.csv; `summary CODE` prints the built districts (level, name, area)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("chiku", "summary"):
        print("usage: python tools/build_chiku.py chiku|summary CODE", file=sys.stderr)
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
