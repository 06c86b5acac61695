"""Needs for the gap report (不足の報告): read from CSV or JSON, aggregated from saved cases, counted per 地区.

A need is anonymous: 地区・目的・対象・移動手段 and a count, never a person. Bad input raises
ValueError with a Japanese message naming the row and the column.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from resdb.domain.vocab import GOALS, MOBILITY, goal_id, mobility_id, target_id
from resdb.exchange import decode
from resdb.geo import DistrictRecord, Gazetteer, code6
from resdb.intake import FileProblem

MAX_NEEDS = 2000
CSV_COLUMNS = ["district", "goal", "targets", "mobility", "count"]
_COLUMN_ALIASES = {
    "地区": "district",
    "district": "district",
    "目的": "goal",
    "goal": "goal",
    "対象": "targets",
    "targets": "targets",
    "移動手段": "mobility",
    "mobility": "mobility",
    "件数": "count",
    "count": "count",
}
_LIST_SEPARATORS = re.compile(r"[,、，・\n]+")

# resolve_home of resdb.matching.Matching: a person with home → the person with home.lat/lon
# (raises resdb.matching.PersonError, a ValueError, when the home cannot be placed).
ResolveHome = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def split_list(text: str) -> list[str]:
    """「高齢者、障害者」 / "a,b" → the items, stripped, empty ones dropped."""
    return [part.strip() for part in _LIST_SEPARATORS.split(text or "") if part.strip()]


def int_or_none(value: Any) -> int | None:
    """The integer a form field holds, or None when it holds none."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def decode_needs_file(raw: bytes) -> str:
    """An uploaded needs file as text: UTF-8 (with or without BOM), else Shift_JIS."""
    try:
        return decode(raw)
    except FileProblem:
        raise ValueError(
            "ファイルの文字コードを読めません（UTF-8 か Shift_JIS にしてください）"
        ) from None


def parse_needs_text(text: str) -> list[dict[str, Any]]:
    """Needs from JSON (a list, or {"needs": [...]}) or CSV (地区,目的,対象,移動手段,件数); ValueError names the row."""
    text = (text or "").lstrip("\ufeff").strip()
    if not text:
        raise ValueError("ニーズが空です。CSV か JSON を貼り付けるか、ファイルを選んでください。")
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"JSON を読めません（{exc.lineno}行目）") from None
        needs = data.get("needs") if isinstance(data, dict) else data
        if not isinstance(needs, list) or not all(isinstance(n, dict) for n in needs):
            raise ValueError('JSON は [{"district": …, "goal": …}, …] の形にしてください')
        return needs
    reader = csv.reader(io.StringIO(text))
    rows = [r for r in reader if any(c.strip() for c in r)]
    header = [c.strip() for c in rows[0]] if rows else []
    if "地区" in header or "district" in header:
        columns = [_COLUMN_ALIASES.get(h) for h in header]
        rows = rows[1:]
    else:
        columns = list(CSV_COLUMNS)
    first_row = 2 if header and columns != CSV_COLUMNS else 1
    return [_need_from_row(n, row, columns) for n, row in enumerate(rows, start=first_row)]


def _need_from_row(n: int, row: list[str], columns: list[str | None]) -> dict[str, Any]:
    cells = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(columns) if c}
    need: dict[str, Any] = {"district": cells.get("district", "")}
    if not need["district"]:
        raise ValueError(f"{n}行目: 地区を入れてください")
    if cells.get("goal"):
        goal = goal_id(cells["goal"])
        if goal is None:
            raise ValueError(
                f"{n}行目 目的: 「{cells['goal']}」は使えません（{'、'.join(GOALS.values())}）"
            )
        need["goal"] = goal
    targets = []
    for text in split_list(cells.get("targets", "")):
        tid = target_id(text)
        if tid is None:
            raise ValueError(f"{n}行目 対象: 「{text}」は使えません")
        targets.append(tid)
    need["targets"] = targets
    if cells.get("mobility"):
        mobility = mobility_id(cells["mobility"])
        if mobility is None:
            raise ValueError(
                f"{n}行目 移動手段: 「{cells['mobility']}」は使えません（{'、'.join(MOBILITY.values())}）"
            )
        need["mobility"] = mobility
    if cells.get("count"):
        count = int_or_none(cells["count"])
        if count is None or count < 1:
            raise ValueError(f"{n}行目 件数: 1 以上の数字にしてください")
        need["count"] = count
    return need


def check_needs_count(needs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The needs, or ValueError when there are more than one report takes."""
    if len(needs) > MAX_NEEDS:
        raise ValueError(f"ニーズは一度に {MAX_NEEDS} 件までです")
    return needs


# -- 地区 of one municipality -----------------------------------------------------------------------
class ChikuAreas:
    """The 地区 of one municipality: found by a stated name (or one of their 町字) or by a point.

    Built once per gazetteer (the directory rebuilds its gazetteer when the districts change), so a
    request never rebuilds polygons; `of()` keeps one per (gazetteer, municipality).
    """

    def __init__(self, records: Iterable[DistrictRecord]) -> None:
        self.records: tuple[DistrictRecord, ...] = tuple(records)
        geometries = np.array([record.geometry for record in self.records], dtype=object)
        shapely.prepare(geometries)
        self._geometries = geometries
        self._tree = shapely.STRtree(geometries)

    _cache: weakref.WeakKeyDictionary[Gazetteer, dict[str, ChikuAreas]] = (
        weakref.WeakKeyDictionary()
    )
    _lock = threading.Lock()

    @classmethod
    def of(cls, gazetteer: Gazetteer, municipality_code: str) -> ChikuAreas:
        """The 地区 of the municipality in this gazetteer (in name order), built once."""
        code = code6(municipality_code)
        with cls._lock:
            per_code = cls._cache.setdefault(gazetteer, {})
            if code not in per_code:
                per_code[code] = cls(
                    sorted(
                        (
                            record
                            for record in gazetteer.records
                            if record.level == "chiku" and record.municipality_code == code
                        ),
                        key=lambda record: record.name,
                    )
                )
            return per_code[code]

    def by_name(self, text: str | None) -> str | None:
        """The 地区 a stated name belongs to: the 地区 itself (with or without 「地区」) or one of its 町字."""
        text = (text or "").strip()
        if not text:
            return None
        for record in self.records:
            if text in (record.name, record.name.removesuffix("地区")):
                return record.name
        return next((r.name for r in self.records if text in (r.members or [])), None)

    def at(self, lat: float | None, lon: float | None) -> str | None:
        """The first 地区 (in name order) whose area covers the point."""
        if lat is None or lon is None or not self.records:
            return None
        point = shapely.Point(float(lon), float(lat))
        for position in sorted(int(i) for i in self._tree.query(point)):
            if self._geometries[position].covers(point):
                return self.records[position].name
        return None


def needs_from_persons(
    persons: Iterable[Mapping[str, Any]], resolve_home: ResolveHome, areas: ChikuAreas
) -> list[dict[str, Any]]:
    """Anonymous needs from persons (saved cases): 地区・目的・対象・移動手段 and how many, nothing else.

    A person whose home cannot be placed in a 地区 (nor names one) is left out.
    """
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for person in persons:
        try:
            home = resolve_home(person)["home"]
        except ValueError:
            continue
        district = (
            areas.by_name(home.get("district"))
            or areas.at(home.get("lat"), home.get("lon"))
            or home.get("district")
        )
        if not district:
            continue
        goal = (person.get("goals") or [""])[0]
        key = (
            district,
            goal,
            tuple(sorted(person.get("targets") or [])),
            person.get("mobility") or "",
        )
        need = out.setdefault(
            key,
            {
                "district": district,
                "goal": goal or None,
                "targets": list(key[2]),
                "mobility": key[3] or None,
                "count": 0,
            },
        )
        need["count"] += 1
    return [{k: v for k, v in n.items() if v is not None} for n in out.values()]


@dataclass(frozen=True)
class ChikuCounts:
    """Per 地区: how many needs the report counted, and how many of them no place can meet."""

    needs: dict[str, int]
    unmet: dict[str, int]


def count_by_chiku(
    needs: list[dict[str, Any]],
    report: Mapping[str, Any],
    areas: ChikuAreas,
    resolve_home: ResolveHome,
    municipality_code: str,
) -> ChikuCounts:
    """The gap report's rows counted per 地区 (by the need's stated 地区, else where its home lies)."""
    unmet: dict[str, int] = {}
    total: dict[str, int] = {}
    for row in report["needs"]:
        need = needs[row["need"]]
        name = areas.by_name(need.get("district"))
        if name is None:
            home_fields = {k: need.get(k) for k in ("lat", "lon", "address", "district")}
            try:
                home = resolve_home(
                    {"home": home_fields | {"municipality_code": municipality_code}}
                )
                name = areas.at(home["home"].get("lat"), home["home"].get("lon"))
            except ValueError:
                name = None
        if name is None:
            continue
        total[name] = total.get(name, 0) + row["count"]
        if row["available"] < 1:
            unmet[name] = unmet.get(name, 0) + row["count"]
    return ChikuCounts(total, unmet)
