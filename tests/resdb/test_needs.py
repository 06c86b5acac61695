"""resdb.needs: the 地区 lookups are built once per district revision and answer by name, 町字 and point;
needs read from CSV name their row; persons aggregate into anonymous needs."""

from __future__ import annotations

from typing import Any

import pytest

from resdb.matching import Matching
from resdb.needs import ChikuAreas, needs_from_persons, parse_needs_text


def test_chiku_areas_are_built_once_per_district_revision(make_directory: Any) -> None:
    from resdb import geo
    from resdb.demo import load_districts

    directory = make_directory("sqlite")
    load_districts(directory, ("16211",))
    first = ChikuAreas.of(directory.gazetteer(), "16211")
    assert ChikuAreas.of(directory.gazetteer(), "162116") is first  # same revision: not rebuilt
    assert len(first.records) == 27
    assert first.by_name("大島") == "大島地区" and first.by_name("小島") == "大島地区"
    point = next(r for r in first.records if r.name == "大島地区").geometry.representative_point()
    assert first.at(point.y, point.x) == "大島地区" and first.at(None, 137.0) is None

    persons = [
        {"home": {"district": "小島"}, "goals": ["friends"], "targets": ["elderly"]},
        {"home": {"lat": point.y, "lon": point.x}, "goals": ["friends"], "targets": ["elderly"]},
        {"home": {"district": "存在しない町"}, "goals": ["work"]},
    ]
    resolve_home = Matching(directory).resolve_home
    assert needs_from_persons(persons, resolve_home, first) == [
        {"district": "大島地区", "goal": "friends", "targets": ["elderly"], "count": 2}
    ]

    renamed = geo.DistrictRecord(
        "162116", "新しい地区", None, "chiku", point.buffer(0.001), False, "test", "test"
    )
    directory.load_districts([renamed])
    second = ChikuAreas.of(directory.gazetteer(), "16211")
    assert second is not first and "新しい地区" in {r.name for r in second.records}


def test_needs_csv_names_the_row_and_persons_aggregate() -> None:
    with pytest.raises(ValueError, match="2行目 件数"):
        parse_needs_text("地区,件数\n大島地区,0\n")
    needs = parse_needs_text("大島地区,仲間・交流,高齢者,徒歩,3")
    assert needs == [
        {
            "district": "大島地区",
            "goal": "friends",
            "targets": ["elderly"],
            "mobility": "walk",
            "count": 3,
        }
    ]
