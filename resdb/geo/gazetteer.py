"""Gazetteer: 担当地区 names and addresses to district records and points (several municipalities)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import shapely
from shapely.geometry.base import BaseGeometry

from resdb.domain.textnorm import fold, normalize, place_key
from resdb.geo.codes import (
    WHOLE_MUNICIPALITY,
    arabic_chome_to_kanji,
    code6,
    split_area_names,
    split_chome,
    town_key,
)
from resdb.geo.records import DistrictRecord, polygonal

_PREF_RE = re.compile(r"^(北海道|東京都|京都府|大阪府|.{2,3}?県)")
_OTHER_MUNICIPALITY_RE = re.compile(r"^[^\d\s]{1,5}?[市郡]")
_LEADING_NUMBER_RE = re.compile(r"^(\d+)\s*[-‐－ー−―の]")


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
                key = town_key(record.name)
                index.towns.setdefault(key, record)
                index.max_key = max(index.max_key, len(key))
                base, number = split_chome(record.name)
                if number is not None:
                    index.chome.setdefault(town_key(base), {})[number] = record
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
        key = town_key(name)
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
        parent = self._by_code[code].towns.get(town_key(base)) if number is not None else None
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
        return polygonal(shapely.union_all(parts)), unresolved

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
        parent = self._by_code[code].towns.get(town_key(base)) if number is not None else None
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
